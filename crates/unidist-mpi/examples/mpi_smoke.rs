//! End-to-end check of the MPI backend: objects, tasks, errors, nested calls, actors, wait.
//! Run: `UNIDIST_IS_MPI_SPAWN_WORKERS=false mpiexec -n 3 target/.../examples/mpi_smoke`.

mod common;

use std::time::{Duration, Instant};

use common::*;
use unidist::{ErrorKind, ObjectRef};

fn check(name: &str, f: impl FnOnce()) {
    let t = Instant::now();
    f();
    println!("ok   {name} ({:.1} ms)", t.elapsed().as_secs_f64() * 1e3);
}

fn main() -> unidist::Result<()> {
    unidist::init()?;
    println!("workers: {}", unidist::num_cpus());
    check("put/get", || {
        let r = unidist::put(vec![1u32, 2, 3]);
        assert_eq!(unidist::get(&r).unwrap(), vec![1, 2, 3]);
        assert_eq!(unidist::get(&r).unwrap(), vec![1, 2, 3]);
    });
    check("quickstart", || {
        let refs: Vec<ObjectRef<i64>> = (0..5).map(square).collect();
        assert_eq!(unidist::get_all(&refs).unwrap(), vec![0, 1, 4, 9, 16]);
    });
    check("chaining refs", || {
        let a = square(3);
        let b = square(&a);
        let c = add2(&a, &b);
        assert_eq!(unidist::get(&c).unwrap(), 9 + 81);
    });
    check("put as argument", || {
        let p = unidist::put(7i64);
        let r = add2(&p, &p);
        assert_eq!(unidist::get(&r).unwrap(), 14);
        let r2 = square(&p);
        assert_eq!(unidist::get(&r2).unwrap(), 49);
    });
    check("num_returns 2", || {
        let (h, r) = split(7);
        assert_eq!(
            (unidist::get(&h).unwrap(), unidist::get(&r).unwrap()),
            (3, 1)
        );
    });
    check("task panic is an error everywhere", || {
        let b = boom(5);
        for _ in 0..2 {
            let e = unidist::get(&b).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::TaskFailed);
            assert!(e.to_string().contains("boom 5"), "{e}");
            assert!(e.to_string().contains("common::boom"), "{e}");
        }
        let dep = square(&b);
        let e = unidist::get(&dep).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::TaskFailed, "{e}");
        let (ready, _) = unidist::wait(std::slice::from_ref(&b), 1).unwrap();
        assert_eq!(ready.len(), 1);
        assert_eq!(unidist::get(&square(4)).unwrap(), 16);
    });
    check("wait and timeouts", || {
        let slow = sleep_ms(600);
        let fast = sleep_ms(1);
        let (ready, not_ready) = unidist::wait(&[slow.clone(), fast.clone()], 1).unwrap();
        assert_eq!(ready.len(), 1);
        assert_eq!(not_ready.len(), 1);
        if unidist::num_cpus() > 1 {
            // With one worker the fast task may queue behind the slow one.
            assert_eq!(ready, vec![fast.clone()]);
        }
        let slower = sleep_ms(300);
        let e = unidist::get_timeout(&slower, Duration::from_millis(10)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Timeout);
        let (r, n) =
            unidist::wait_timeout(std::slice::from_ref(&slower), 1, Duration::from_millis(5))
                .unwrap();
        assert!(r.is_empty() && n.len() == 1);
        assert_eq!(unidist::get(&slower).unwrap(), 300);
        assert_eq!(unidist::get(&slow).unwrap(), 600);
    });
    check("nested remote + get inside tasks", || {
        assert_eq!(
            unidist::get(&nested(6)).unwrap(),
            (0..6).map(|i| i * i).sum::<i64>()
        );
    });
    check("deep blocking chain (pool lends slots)", || {
        assert_eq!(unidist::get(&depth(8)).unwrap(), 8);
    });
    check("refs inside values", || {
        let refs: Vec<ObjectRef<i64>> = (1..4).map(square).collect();
        assert_eq!(unidist::get(&deref(refs)).unwrap(), 1 + 4 + 9);
        let inner = unidist::get(&put_inside(41)).unwrap();
        assert_eq!(unidist::get(&inner).unwrap(), 42);
    });
    check("large values: inline and out of band", || {
        let v: Vec<f64> = (0..300_000).map(f64::from).collect();
        let expect: f64 = v.iter().sum();
        assert_eq!(unidist::get(&sum_vec(v.clone())).unwrap(), expect);
        let p = unidist::put(unidist::Buffer::from(v.clone()));
        assert_eq!(unidist::get(&sum_buf(&p)).unwrap(), expect);
        let made = make_buf(1_000_000);
        let s = sum_buf(&made);
        assert_eq!(
            unidist::get(&s).unwrap(),
            (0..1_000_000u64).map(|i| i as f64).sum::<f64>()
        );
        assert_eq!(unidist::get(&made).unwrap().len(), 1_000_000);
    });
    check("actor calls in order, async, handle in a task", || {
        let c = CounterHandle::new(0);
        let refs: Vec<_> = (0..10).map(|_| c.add(1)).collect();
        assert_eq!(
            unidist::get_all(&refs).unwrap(),
            (1..=10).collect::<Vec<i64>>()
        );
        let waiting = c.wait_signal();
        std::thread::sleep(Duration::from_millis(50));
        assert!(unidist::wait_timeout(
            std::slice::from_ref(&waiting),
            1,
            Duration::from_millis(20)
        )
        .unwrap()
        .0
        .is_empty());
        assert_eq!(
            unidist::get(&c.get()).unwrap(),
            10,
            "a sync call runs while an async one waits"
        );
        unidist::get(&c.signal()).unwrap();
        assert_eq!(unidist::get(&waiting).unwrap(), 10);
        assert_eq!(unidist::get(&call_counter(c.clone())).unwrap(), 110);
        c.kill().unwrap();
        let e = unidist::get(&c.get()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ActorDead, "{e}");
    });
    check("cluster resources", || {
        let res = unidist::cluster_resources().unwrap();
        let cpus: f64 = res.values().map(|m| m["CPU"]).sum();
        assert_eq!(cpus as usize, unidist::num_cpus());
    });
    unidist::shutdown()?;
    unidist::shutdown()?;
    println!("ALL OK");
    Ok(())
}
