//! Ends a program in unusual ways, to check that every rank still ends: `noshutdown` returns from
//! `main` without `shutdown`; `panic` panics on rank 0 outside a task (the job must abort, not
//! hang); `exit` calls `std::process::exit(0)` with work in flight.

mod common;

use common::*;

fn main() -> unidist::Result<()> {
    unidist::init()?;
    let mode = std::env::args().nth(1).unwrap_or_default();
    let r = square(7);
    assert_eq!(unidist::get(&r)?, 49);
    match mode.as_str() {
        "panic" => panic!("deliberate panic on rank 0"),
        "exit" => {
            let _pending = sleep_ms(2000);
            std::process::exit(0)
        }
        _ => {
            println!("returning from main without shutdown");
            Ok(())
        }
    }
}
