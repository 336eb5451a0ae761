//! Unit tests of the node: message handling, lost ranks and scheduling without MPI.

use std::sync::Arc;
use std::time::{Duration, Instant};

use unidist_core::call::ArgState;
use unidist_core::registry::{ActorClassEntry, Registration, RemoteFunction};
use unidist_core::{
    ActorId, ActorSpec, AnyRef, Arg, Backend, DeadReason, Error, ErrorKind, ObjectId, Outputs,
    Payload, TaskFailure, TaskOptions, TaskSpec,
};
use unidist_serialize::{encode_with_oob, Buffer};

use super::effects::Effects;
use super::execute::Reply;
use super::state::{CallKind, ReceivedCall};
use super::Node;
use crate::comm::Out;
use crate::process::LostPeers;
use crate::wire::{ArgWire, NodeMsg, Slot, WireError};

fn node(rank: u32) -> (Arc<Node>, crossbeam_channel::Receiver<Out>) {
    let (tx, rx) = crossbeam_channel::unbounded();
    let lost = Arc::new(LostPeers::default());
    (
        Node::new(
            rank,
            3,
            vec![String::new(); 3],
            tx,
            1024,
            lost,
            crate::shm::Store::disabled(),
        ),
        rx,
    )
}

fn pushed(id: ObjectId) -> NodeMsg {
    let e = encode_with_oob(&Buffer::<f64>::from(vec![2.0; 4096]), 1024).unwrap();
    NodeMsg::Push {
        id,
        value: Slot::Ready(Arc::new(e)),
    }
}

#[test]
fn a_push_ahead_of_its_call_is_kept_and_freed_by_its_sender() {
    // Rank 0 pushes its object to worker 1 right before the call that needs it, so the
    // worker has no entry for it yet; dropping the push would make the call fetch the same
    // bytes a second time.
    let (n, out) = node(1);
    let id = ObjectId::new(0, 7);
    n.handle(0, pushed(id));
    assert!(n
        .state
        .lock()
        .objects
        .get(&id)
        .is_some_and(|o| o.data.is_some()));
    let mut effects = Effects::default();
    n.request(&mut n.state.lock(), &mut effects, id);
    assert!(
        effects.sends.is_empty(),
        "a pushed value must not be fetched again"
    );
    assert!(out.try_recv().is_err(), "nothing is sent for a push");
    n.handle(0, NodeMsg::Free { ids: vec![id] });
    assert!(!n.state.lock().objects.contains_key(&id));
}

#[test]
fn a_get_of_an_object_on_a_lost_worker_fails_naming_it() {
    let (n, _out) = node(0);
    let id = n.with(|state, _| n.new_outputs(state, 1, 2))[0];
    n.peer_lost(2, "its process 42 ended");
    let r = n.get(&[id], Some(Duration::from_secs(5)));
    let Err(e) = r else {
        panic!("the object cannot arrive any more")
    };
    let e = e.to_string();
    assert!(e.contains("rank 2 was lost (its process 42 ended)"), "{e}");
}

#[test]
fn a_fetch_from_a_lost_rank_fails_instead_of_waiting() {
    // Worker 1 learns that rank 2 is gone, then needs an object that only rank 2 owned.
    let (n, out) = node(1);
    n.peer_lost(2, "it stopped answering: no message from it for 10 s");
    let id = ObjectId::new(2, 9);
    let started = Instant::now();
    let r = n.get(&[id], Some(Duration::from_secs(5)));
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "it waited for the timeout"
    );
    let Err(e) = r else {
        panic!("nothing can deliver it")
    };
    let e = e.to_string();
    assert!(e.contains("rank 2 was lost"), "{e}");
    assert!(
        out.try_iter().all(|o| !matches!(o, Out::Msg(2, _))),
        "nothing may be sent to a lost rank"
    );
}

#[test]
fn scheduling_skips_lost_workers_and_fails_without_any() {
    let (n, _out) = node(0);
    n.peer_lost(1, "its process 7 ended");
    for _ in 0..4 {
        assert_eq!(n.choose(&mut n.state.lock(), &[], false).ok(), Some(2));
    }
    n.peer_lost(2, "its process 8 ended");
    let e = n
        .choose(&mut n.state.lock(), &[], true)
        .unwrap_err()
        .to_string();
    assert!(e.contains("every worker was lost"), "{e}");
}

#[test]
fn an_owner_ignores_a_push_of_an_object_it_freed() {
    let (n, _out) = node(1);
    let id = ObjectId::new(1, 3);
    n.handle(2, pushed(id));
    assert!(!n.state.lock().objects.contains_key(&id));
}

#[test]
fn an_owner_answers_a_lookup_of_a_released_actor_with_the_reason() {
    let (n, out) = node(0);
    let actor = ActorId { owner: 0, seq: 77 };
    n.handle(1, NodeMsg::ActorLocate { actor });
    let answer = out.try_iter().find_map(|o| match o {
        Out::Msg(1, NodeMsg::ActorWhere { worker, .. }) => Some(worker),
        _ => None,
    });
    assert_eq!(
        answer,
        Some(Err(DeadReason::Released)),
        "the owner must say why the actor is gone"
    );
}

fn nothing(_: Vec<Payload>) -> unidist_core::Result<Outputs> {
    Ok(Vec::new())
}

static NOTHING: RemoteFunction = RemoteFunction {
    name: "tests::nothing",
    num_returns: 0,
    invoke: nothing,
};

#[test]
fn a_ref_holding_an_error_travels_as_a_failed_argument() {
    // The submission goes on: the error becomes the call's argument error on its worker.
    let (n, _out) = node(0);
    let stale = AnyRef::failed(Error::StaleRef { what: "0:1".into() });
    let args = vec![Arg::Value(Arc::new(5i64)), Arg::Ref(stale)];
    let encoded = n
        .encode_args(&args)
        .expect("a failed ref must not fail the submission");
    let sending = super::state::Sending::Task(&[]);
    let wire = n.with(|state, effects| n.record_call(state, effects, 1, &args, encoded, sending).1);
    assert_eq!(wire.len(), 2);
    assert!(
        matches!(
            &wire[1],
            ArgWire::Failed(WireError::Other(ErrorKind::StaleRef, _))
        ),
        "{:?}",
        wire[1]
    );
}

#[test]
fn a_received_call_fails_on_a_failed_or_unreachable_argument() {
    let reply = Reply {
        outputs: Vec::new(),
        to: 0,
        seq: 1,
    };
    let mut call = ReceivedCall {
        kind: CallKind::Task(&NOTHING),
        actor: None,
        args: vec![
            ArgState::Ready(Payload::local(1i64)),
            ArgState::Pending(ObjectId::new(2, 4)),
        ],
        missing: 1,
        reply,
        options: Default::default(),
    };
    // A call that must start while an argument is still pending fails naming it.
    let e = call
        .take_args()
        .expect_err("the pending argument can never arrive");
    assert_eq!(e.failure, TaskFailure::ArgumentFailed);
    assert_eq!(e.function, "tests::nothing");
    assert!(
        e.message.contains("argument 1") && e.message.contains("2:4"),
        "{e}"
    );
}

fn tally_new(_: Vec<Payload>) -> unidist_core::Result<unidist_core::actor::ActorState> {
    Ok(Box::new(0i64))
}

static TALLY: ActorClassEntry = ActorClassEntry {
    name: "tests::Tally",
    construct: tally_new,
};
unidist_core::inventory::submit! { Registration::Class(&TALLY) }

/// The actor creations sent so far: the rank each went to, the actor, its argument count.
fn creations(out: &crossbeam_channel::Receiver<Out>) -> Vec<(u32, ActorId, usize)> {
    out.try_iter()
        .filter_map(|o| match o {
            Out::Msg(w, NodeMsg::ActorCreate { actor, args, .. }) => Some((w, actor, args.len())),
            _ => None,
        })
        .collect()
}

/// Creates a `tests::Tally` with one constructor argument and `restarts` restarts.
fn create(n: &Node, restarts: u32) -> ActorId {
    let spec = ActorSpec {
        class: &TALLY,
        args: vec![Arg::Value(Arc::new(5i64))],
        options: TaskOptions::default().max_restarts(restarts),
    };
    n.create_actor_on_worker(spec)
        .expect("a registered actor type can be created")
}

#[test]
fn an_actor_with_restarts_is_created_again_on_a_live_worker_until_they_run_out() {
    let (n, out) = node(0);
    let restartable = create(&n, 1);
    let plain = create(&n, 0);
    // Two workers (ranks 1 and 2): the actors are spread over them.
    let first = creations(&out);
    let ranks: Vec<u32> = first.iter().map(|c| c.0).collect();
    assert_eq!(ranks, [1, 2], "{first:?}");

    n.peer_lost(1, "its process 41 ended");
    assert_eq!(
        creations(&out),
        [(2, restartable, 1)],
        "the creation, with its argument, goes again to the live worker"
    );
    {
        let state = n.state.lock();
        let a = &state.actors.owned[&restartable];
        assert_eq!((a.worker, &a.dead), (2, &None), "it now lives on rank 2");
        assert_eq!(state.workers.actors, [0, 0, 2]);
        assert!(state.actors.owned[&plain].dead.is_none(), "rank 2 is alive");
    }

    n.peer_lost(2, "its process 42 ended");
    assert!(
        creations(&out).is_empty(),
        "no restart is left, no worker either"
    );
    let state = n.state.lock();
    let exhausted = state.actors.owned[&restartable].dead.clone();
    assert_eq!(
        exhausted,
        Some(DeadReason::RestartsExhausted {
            rank: 2,
            why: "its process 42 ended".into(),
            restarts: 1,
        })
    );
    let e = Error::actor_dead(
        TALLY.name,
        restartable,
        exhausted.unwrap_or(DeadReason::Killed),
    );
    assert_eq!(e.kind(), ErrorKind::ActorDead);
    assert!(e.to_string().contains("restarts ran out"), "{e}");
    assert_eq!(
        state.actors.owned[&plain].dead,
        Some(DeadReason::WorkerLost {
            rank: 2,
            why: "its process 42 ended".into(),
        }),
        "an actor without restarts is dead with its worker"
    );
}

#[test]
fn an_actor_located_on_a_lost_rank_is_asked_of_its_owner_again() {
    // The owner may have restarted it elsewhere, so a worker forgets where it lived.
    let (n, _out) = node(1);
    let actor = ActorId { owner: 0, seq: 9 };
    n.handle(
        0,
        NodeMsg::ActorWhere {
            actor,
            worker: Ok(2),
        },
    );
    assert!(n.state.lock().actors.located.contains_key(&actor));
    n.peer_lost(2, "its process 42 ended");
    assert!(!n.state.lock().actors.located.contains_key(&actor));
}

fn one(_: Vec<Payload>) -> unidist_core::Result<Outputs> {
    Ok(vec![unidist_core::value::output(1u8)])
}

static ONE: RemoteFunction = RemoteFunction {
    name: "tests::one",
    num_returns: 1,
    invoke: one,
};
unidist_core::inventory::submit! { Registration::Function(&ONE) }

/// Submits `tests::one` on `arg` with `retries` retries; returns its output.
fn submit_one(n: &Node, arg: Arg, retries: u32) -> ObjectId {
    let task = TaskSpec {
        function: &ONE,
        args: vec![arg],
        options: TaskOptions::default().max_retries(retries),
    };
    n.submit_task(task)
        .expect("a registered function is submitted")[0]
}

/// A task sent so far: the rank it went to, its number, outputs, arguments and runs made.
type Sent = (u32, u64, Vec<ObjectId>, Vec<ArgWire>, u32);

fn sent_tasks(out: &crossbeam_channel::Receiver<Out>) -> Vec<Sent> {
    out.try_iter()
        .filter_map(|o| match o {
            Out::Msg(
                w,
                NodeMsg::Task {
                    seq, outputs, args, ..
                },
            ) => Some((w, seq, outputs, args, 0)),
            Out::Msg(
                w,
                NodeMsg::TaskWith {
                    seq,
                    outputs,
                    args,
                    options,
                    ..
                },
            ) => Some((w, seq, outputs, args, options.runs)),
            _ => None,
        })
        .collect()
}

/// Every task sent so far finished on the rank it was sent to.
fn finish_sent(n: &Node, out: &crossbeam_channel::Receiver<Out>) -> Vec<Sent> {
    let sent = sent_tasks(out);
    for (w, seq, ..) in &sent {
        let results = vec![Ok(8)];
        n.handle(*w, NodeMsg::Done { seq: *seq, results });
    }
    sent
}

/// The error of `id` on the node, which must have failed.
fn failure_of(n: &Node, id: ObjectId) -> Error {
    match n.get(&[id], Some(Duration::from_secs(5))) {
        Ok(_) => panic!("{id} must have failed"),
        Err(e) => e,
    }
}

/// The tests that fail tasks because of a lost worker, one at a time: the failed-task counter
/// is process-wide.
static FAILING_TASKS: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn tasks_failed() -> u64 {
    unidist_core::observe::stats::local().tasks_failed
}

#[test]
fn finished_objects_lost_with_their_worker_are_rebuilt_from_lineage() {
    let _turn = FAILING_TASKS.lock().unwrap_or_else(|p| p.into_inner());
    let (n, out) = node(0);
    let backend: Arc<dyn Backend> = n.clone();
    // One after the other, each finished before the next is sent: all run on rank 1.
    let a = submit_one(&n, Arg::Value(Arc::new(5i64)), 2);
    finish_sent(&n, &out);
    let ra = AnyRef::live(a, &backend);
    let b = submit_one(&n, Arg::Ref(ra.clone()), 2);
    finish_sent(&n, &out);
    let plain = submit_one(&n, Arg::Value(Arc::new(6i64)), 0);
    let mut first = finish_sent(&n, &out);
    let once = submit_one(&n, Arg::Value(Arc::new(7i64)), 1);
    first.extend(finish_sent(&n, &out));
    assert!(first.iter().all(|t| t.0 == 1), "{first:?}");
    assert_eq!(
        n.state.lock().lineage.len(),
        3,
        "tasks without retries keep nothing"
    );

    n.peer_lost(1, "its process 41 ended");
    let again = sent_tasks(&out);
    let rebuilt: Vec<(u32, ObjectId, u32)> = again.iter().map(|t| (t.0, t.2[0], t.4)).collect();
    assert_eq!(
        rebuilt,
        [(2, a, 1), (2, b, 1), (2, once, 1)],
        "each rebuild goes to the live worker, an argument before the task taking it"
    );
    assert!(
        matches!(again[1].3[..], [ArgWire::Ref { id, from: 2 }] if id == a),
        "the rebuilt argument is fetched from its new location: {:?}",
        again[1].3
    );
    let e = failure_of(&n, plain);
    assert_eq!(e.kind(), ErrorKind::WorkerLost);
    assert!(e.to_string().contains("cannot be rebuilt"), "{e}");
    for (w, seq, ..) in &again {
        n.handle(
            *w,
            NodeMsg::Done {
                seq: *seq,
                results: vec![Ok(8)],
            },
        );
    }
    {
        let state = n.state.lock();
        let o = &state.objects[&b];
        assert_eq!(o.location, Some(2));
        assert!(matches!(o.status, super::state::ObjectStatus::Ready));
        assert_eq!(
            state.lineage.len(),
            3,
            "the rebuilt tasks keep their records again"
        );
    }

    n.peer_lost(2, "its process 42 ended");
    assert!(sent_tasks(&out).is_empty(), "no worker is left");
    let e = failure_of(&n, once);
    assert!(e.to_string().contains("after 2 runs"), "{e}");
    let e = failure_of(&n, a);
    assert!(e.to_string().contains("no worker is left"), "{e}");
    let e = failure_of(&n, b);
    let lost_arg = format!("its argument {a} was lost too");
    assert!(e.to_string().contains(&lost_arg), "{e}");

    // The records go with the last refs to their outputs; `a`'s lives while `b`'s holds it.
    for id in [b, plain, once] {
        n.release_ref(id);
    }
    assert_eq!(n.state.lock().lineage.len(), 1);
    drop(ra);
    assert!(n.state.lock().lineage.is_empty());
}

#[test]
fn an_object_whose_owner_is_lost_fails_saying_it_cannot_be_rebuilt() {
    // Worker 1 holds a ref to a value rank 2 put: nobody is left to make it again.
    let (n, _out) = node(1);
    let id = ObjectId::new(2, 5);
    n.handle_deserialized(id)
        .expect("a ref owned elsewhere is registered");
    n.peer_lost(2, "its process 42 ended");
    let e = failure_of(&n, id);
    assert_eq!(e.kind(), ErrorKind::WorkerLost);
    let e = e.to_string();
    assert!(
        e.contains("rank 2 was lost") && e.contains("cannot be rebuilt: its owner was that rank"),
        "{e}"
    );
}

#[test]
fn a_task_sent_again_after_a_loss_fetches_its_rebuilt_argument_where_it_is_now() {
    let (n, out) = node(0);
    let backend: Arc<dyn Backend> = n.clone();
    let a = submit_one(&n, Arg::Value(Arc::new(5i64)), 1);
    finish_sent(&n, &out);
    let ra = AnyRef::live(a, &backend);
    // Still running on rank 1, beside its finished argument, when rank 1 is lost.
    let b = submit_one(&n, Arg::Ref(ra), 1);
    let running: Vec<u32> = sent_tasks(&out).iter().map(|t| t.0).collect();
    assert_eq!(running, [1]);
    n.peer_lost(1, "its process 41 ended");
    let again = sent_tasks(&out);
    let order: Vec<(u32, ObjectId)> = again.iter().map(|t| (t.0, t.2[0])).collect();
    assert_eq!(order, [(2, a), (2, b)], "the argument is rebuilt first");
    assert!(
        matches!(again[1].3[..], [ArgWire::Ref { id, from: 2 }] if id == a),
        "{:?}",
        again[1].3
    );
}

#[test]
fn tasks_that_fail_here_because_their_worker_was_lost_are_counted_as_failed() {
    let _turn = FAILING_TASKS.lock().unwrap_or_else(|p| p.into_inner());
    let (n, out) = node(0);
    let before = tasks_failed();
    // Spread over ranks 1 and 2: a plain task, one with a retry left, and an actor creation.
    let plain = submit_one(&n, Arg::Value(Arc::new(5i64)), 0);
    let retried = submit_one(&n, Arg::Value(Arc::new(6i64)), 1);
    create(&n, 0);
    n.peer_lost(1, "its process 41 ended");
    n.peer_lost(2, "its process 42 ended");
    assert!(
        sent_tasks(&out).iter().all(|t| t.0 != 0),
        "no task ran here"
    );
    for id in [plain, retried] {
        assert_eq!(failure_of(&n, id).kind(), ErrorKind::WorkerLost);
    }
    assert_eq!(
        tasks_failed() - before,
        2,
        "both tasks failed here; a lost actor creation is no failed task"
    );
}

#[test]
fn the_least_loaded_worker_is_found_without_a_scan_and_skips_lost_ones() {
    let mut state = super::state::State::new(5);
    let w = &mut state.workers;
    assert_eq!(w.least_loaded(|_| false), Some((0, 1)));
    w.sent(1);
    w.sent(1);
    w.sent(2);
    assert_eq!(w.least_loaded(|_| false), Some((0, 3)));
    assert_eq!(w.least_loaded(|r| r == 3), Some((0, 4)));
    w.sent(3);
    w.sent(4);
    // Every worker has work: the lowest rank among the least loaded.
    assert_eq!(w.least_loaded(|_| false), Some((1, 2)));
    w.finished(1);
    w.finished(1);
    assert_eq!(w.least_loaded(|_| false), Some((0, 1)));
    assert_eq!((w.calls.clone(), w.inflight), (vec![0, 0, 1, 1, 1], 3));
    assert_eq!(w.least_loaded(|_| true), None);
    // A finish with nothing outstanding (a late duplicate) leaves the count at zero.
    w.finished(1);
    assert_eq!(w.calls[1], 0);
}

/// Rank 0 with the shared store on, every rank being this process (so that it can read "their"
/// memory), and the store of rank 1 in the same process, which offers the reads.
fn node_with_peers() -> (
    Arc<Node>,
    crossbeam_channel::Receiver<Out>,
    Arc<crate::shm::Store>,
) {
    let cfg = crate::shm::Config {
        enabled: true,
        limit: 1 << 30,
        threshold: 1024,
    };
    let me = std::process::id();
    let pids = [(me, true), (me, true), (me, true)];
    let (tx, rx) = crossbeam_channel::unbounded();
    let store = crate::shm::Store::new(cfg, 0, &pids);
    let n = Node::new(
        0,
        3,
        vec![String::new(); 3],
        tx,
        1024,
        Arc::new(LostPeers::default()),
        store,
    );
    (n, rx, crate::shm::Store::new(cfg, 1, &pids))
}

#[test]
fn get_reads_a_value_from_the_holders_memory_and_fetches_it_again_if_that_fails() {
    let (n, out, holder) = node_with_peers();
    let value: Vec<f64> = (0..100_000).map(f64::from).collect();
    let held = unidist_serialize::encode_shared(&Arc::new(value.clone()), 1024).unwrap();
    let ids = n.with(|state, _| n.new_outputs(state, 2, 1));
    // Worker 1 answers the fetch of the first with where the value lies in its memory: `get`
    // reads it from there into memory of its own, and the value decodes whole.
    let desc = holder.offer_peer_read(0, &held).expect("offered to rank 0");
    n.handle(
        1,
        NodeMsg::PeerRead {
            id: ids[0],
            desc: desc.clone(),
        },
    );
    let got = n.get(&[ids[0]], Some(Duration::from_secs(5))).unwrap();
    let Payload::Encoded(e) = &got[0] else {
        panic!("a read value is an encoding")
    };
    assert_ne!(
        e.buffers[0].as_bytes().as_ptr(),
        held.buffers[0].as_bytes().as_ptr()
    );
    assert_eq!(got[0].take::<Vec<f64>>().unwrap(), value);
    assert!(out.try_recv().is_err(), "a successful read sends nothing");
    // A descriptor whose read fails (here: a token that does not match): the holder is told to
    // stop offering reads, the object is fetched again, and `get` returns what arrives then.
    let mut bad = desc;
    bad.token ^= 1;
    n.handle(
        1,
        NodeMsg::PeerRead {
            id: ids[1],
            desc: bad,
        },
    );
    let getter = {
        let n = n.clone();
        let id = ids[1];
        std::thread::spawn(move || n.get(&[id], Some(Duration::from_secs(10))))
    };
    let mut saw_off = false;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match out.recv_timeout(left) {
            Ok(Out::Msg(1, NodeMsg::PeerReadOff)) => saw_off = true,
            Ok(Out::Msg(1, NodeMsg::Fetch { id, requester: 0 })) if id == ids[1] => break,
            Ok(_) => {}
            Err(e) => panic!("no fetch after the failed read: {e}"),
        }
    }
    assert!(saw_off, "the holder was not told before the fetch");
    let bytes = encode_with_oob(&value, 1024).unwrap();
    n.handle(
        1,
        NodeMsg::Data {
            id: ids[1],
            value: Slot::Ready(Arc::new(bytes)),
        },
    );
    let again = getter.join().unwrap().unwrap();
    assert_eq!(again[0].take::<Vec<f64>>().unwrap(), value);
    // The holder stops offering once told.
    holder.peer_reads_off();
    assert!(holder.offer_peer_read(0, &held).is_none());
}

#[test]
fn a_lost_holder_takes_the_values_in_its_memory_with_it() {
    let (n, _out, holder) = node_with_peers();
    let held = unidist_serialize::encode_shared(&Arc::new(vec![1u8; 1 << 20]), 1024).unwrap();
    let id = n.with(|state, _| n.new_outputs(state, 1, 1))[0];
    let desc = holder.offer_peer_read(0, &held).unwrap();
    n.handle(1, NodeMsg::PeerRead { id, desc });
    assert!(n.state.lock().objects[&id].peer.is_some());
    n.peer_lost(1, "its process ended");
    let e = n.get(&[id], Some(Duration::from_secs(5))).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::WorkerLost, "{e}");
}

#[test]
fn a_caller_woken_by_a_result_finds_the_calls_argument_refs_released() {
    // A small result comes ahead of its call's `Done`. Had it woken `get` at once, the caller
    // could drop its own ref while the call still held the argument, and the argument would
    // outlive both (a large one keeping its shared segment from the next put).
    let (n, out) = node(0);
    let backend: Arc<dyn Backend> = n.clone();
    let a = n.put_value(Arc::new(vec![1u8; 64])).unwrap();
    let ra = AnyRef::live(a, &backend);
    let b = submit_one(&n, Arg::Ref(ra.clone()), 0);
    let (w, seq) = match &sent_tasks(&out)[..] {
        [(w, seq, outputs, ..)] if outputs[..] == [b] => (*w, *seq),
        other => panic!("one task for {b} must be sent, not {other:?}"),
    };
    let finisher = {
        let n = n.clone();
        std::thread::spawn(move || {
            let e = encode_with_oob(&1u8, 1024).unwrap();
            let value = Slot::Ready(Arc::new(e));
            n.handle(w, NodeMsg::Data { id: b, value });
            std::thread::sleep(Duration::from_millis(50));
            n.handle(
                w,
                NodeMsg::Done {
                    seq,
                    results: vec![Ok(1)],
                },
            );
        })
    };
    let got = n.get(&[b], Some(Duration::from_secs(5)));
    assert!(got.is_ok_and(|v| v.len() == 1));
    drop(ra);
    assert!(
        !n.state.lock().objects.contains_key(&a),
        "the argument must be freed as soon as the caller drops its ref"
    );
    finisher.join().unwrap();
}
