//! Temporary smoke check of the shared store (not committed).
use std::time::Instant;

#[unidist::remote]
fn sum(v: &Vec<f64>) -> f64 {
    v.iter().sum()
}

#[unidist::remote]
fn sumb(v: &unidist::Buffer<f64>) -> f64 {
    v.iter().sum()
}

#[unidist::remote]
fn echo(v: Vec<u8>) -> Vec<u8> {
    v
}

fn main() -> unidist::Result<()> {
    unidist::init()?;
    let n = 8 << 20; // 64 MiB of f64
    let data: Vec<f64> = (0..n).map(|i| (i % 7) as f64).collect();
    let want: f64 = data.iter().sum();
    for round in 0..3 {
        let t = Instant::now();
        let r = unidist::put(data.clone());
        let s = unidist::get(&sum::remote(&r))?;
        let shm = std::fs::read_dir("/dev/shm")
            .map(|d| d.count())
            .unwrap_or(0);
        assert_eq!(s, want);
        println!(
            "round {round}: put+task(&Vec<f64>)+get 64 MiB: {:?} (segments now {shm})",
            t.elapsed()
        );
        let b: unidist::Buffer<f64> = data.clone().into();
        let t = Instant::now();
        let r = unidist::put(b);
        let s = unidist::get(&sumb::remote(&r))?;
        assert_eq!(s, want);
        println!(
            "round {round}: put+task(&Buffer<f64>)+get 64 MiB: {:?}",
            t.elapsed()
        );
        let bytes = vec![3u8; 64 << 20];
        let t = Instant::now();
        let back = unidist::get(&echo::remote(bytes))?;
        assert_eq!(back.len(), 64 << 20);
        println!(
            "round {round}: Vec<u8> round trip 64 MiB: {:?}",
            t.elapsed()
        );
    }
    unidist::shutdown()
}
