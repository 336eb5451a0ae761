//! The workloads of the table (names, units, time limits, which move data) and the floor each
//! of this project's cells is compared with.

use super::report::{Cell, System};
use super::systems::Floors;

/// The workloads, in table order, with their units: the nine shared with the peers from the
/// start, then the data-plane rows of issue 11.
pub(super) const WORKLOADS: [(&str, &str); 14] = [
    ("async_empty_tasks", "tasks/s"),
    ("sync_round_trip", "us"),
    ("put_get_small", "us"),
    ("put_get_large", "GB/s"),
    ("task_sum_large", "s"),
    ("actor_async_calls", "calls/s"),
    ("actor_sync_call", "us"),
    ("cpu_scaling", "ratio"),
    ("nested_fib", "s"),
    ("vec_f64_by_ref", "s"),
    ("buffer_f64_by_ref", "s"),
    ("bytes_round_trip", "s"),
    ("string_round_trip", "s"),
    ("big_object", "GB/s"),
];

/// The rows that move large values, on which spawn mode must stay close to SPMD.
pub(super) const DATA_ROWS: [&str; 7] = [
    "put_get_large",
    "task_sum_large",
    "vec_f64_by_ref",
    "buffer_f64_by_ref",
    "bytes_round_trip",
    "string_round_trip",
    "big_object",
];

/// The row that runs in full mode only and is left out of `--quick` runs.
pub(super) const FULL_ONLY: &str = "big_object";

/// The time limit of `workload` inside a run whose other workloads get `base` seconds, as
/// `unidist-bench workloads` and `workloads.py` apply it: `big_object` gets four times as long.
pub(super) fn time_limit(workload: &str, base: u64) -> u64 {
    if workload == FULL_ONLY {
        4 * base
    } else {
        base
    }
}

/// The sum of every workload's limit for a base of `base` seconds; in quick mode without the
/// full-mode-only row.
pub(super) fn total_limit(base: u64, quick: bool) -> u64 {
    WORKLOADS
        .iter()
        .filter(|(w, _)| !(quick && *w == FULL_ONLY))
        .map(|(w, _)| time_limit(w, base))
        .sum()
}

/// True when a larger value of `unit` is better.
pub(super) fn higher_is_better(unit: &str) -> bool {
    unit.ends_with("/s")
}

/// True for a cell that did not run by design (`skipped: <why>`), which is not a failure.
pub(super) fn is_skipped(status: &str) -> bool {
    status.starts_with("skipped")
}

/// A floor for one cell: its value in the cell's unit and what it is.
pub(super) struct Floor {
    pub value: f64,
    pub name: String,
}

/// The floor of `workload` on `system`: bare rayon (the floors-local suite) for the local
/// backends, raw rsmpi (measured by the same MPI run) for MPI, one memcpy of the value for the
/// rows that copy a large value, the ideal ratio for cpu_scaling.
pub(super) fn floor_of(
    system: &System,
    workload: &str,
    cell: &Cell,
    floors: &Floors,
) -> Option<Floor> {
    let f = |k: &str| {
        system
            .floors
            .get(k)
            .or_else(|| floors.values.get(k))
            .copied()
    };
    let bytes = 64.0 * 1024.0 * 1024.0;
    let tasks = cell.params["tasks"].as_f64();
    let floor = |value: f64, name: &str| {
        Some(Floor {
            value,
            name: name.to_string(),
        })
    };
    let by_ref = matches!(
        workload,
        "task_sum_large" | "vec_f64_by_ref" | "buffer_f64_by_ref"
    );
    match workload {
        "put_get_large" | "big_object" => floor(f("memcpy_64mib_gbs")?, "one 64 MiB memcpy"),
        "bytes_round_trip" => floor(bytes / (f("memcpy_64mib_gbs")? * 1e9), "one 64 MiB memcpy"),
        "string_round_trip" => {
            let value_bytes = cell.params["bytes"].as_f64()?;
            floor(
                value_bytes / (f("memcpy_64mib_gbs")? * 1e9),
                "one memcpy of the String (64 MiB rate)",
            )
        }
        "cpu_scaling" => floor(cell.extra["ideal_ratio"].as_f64()?, "ideal 1/workers"),
        "put_get_small" => None,
        _ if system.mpi => {
            let rtt = f("mpi_rtt_8b_us")?;
            match workload {
                "async_empty_tasks" | "actor_async_calls" => {
                    floor(2e6 / rtt, "raw 8-byte messages/s (1/half RTT)")
                }
                "sync_round_trip" | "actor_sync_call" => floor(rtt, "raw 8-byte ping-pong RTT"),
                _ if by_ref => floor(
                    bytes / (f("mpi_bw_64mib_gbs")? * 1e9),
                    "64 MiB at raw rsmpi bandwidth",
                ),
                "nested_fib" => floor(tasks? * rtt / 2e6, "tasks x raw half RTT"),
                _ => None,
            }
        }
        "async_empty_tasks" => floor(
            f("rayon_spawn_channel_tasks_per_s")?,
            "rayon spawn + channel",
        ),
        "actor_async_calls" => floor(f("actix_send_calls_per_s")?, "actix Addr::send, pipelined"),
        "sync_round_trip" | "actor_sync_call" => {
            floor(f("rayon_round_trip_us")?, "rayon spawn + channel recv")
        }
        _ if by_ref => floor(bytes / (f("memcpy_64mib_gbs")? * 1e9), "one 64 MiB memcpy"),
        "nested_fib" => floor(
            tasks? / f("rayon_spawn_channel_tasks_per_s")?,
            "tasks x rayon spawn + channel",
        ),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_big_row_gets_a_longer_limit_and_quick_leaves_it_out() {
        assert_eq!(time_limit("big_object", 60), 240);
        assert_eq!(time_limit("task_sum_large", 60), 60);
        assert_eq!(total_limit(60, false), 13 * 60 + 240);
        assert_eq!(total_limit(15, true), 13 * 15);
    }

    #[test]
    fn data_rows_and_the_full_only_row_are_workloads() {
        let known = |w: &str| WORKLOADS.iter().any(|(n, _)| *n == w);
        assert!(DATA_ROWS.iter().all(|w| known(w)));
        assert!(known(FULL_ONLY));
        assert!(is_skipped("skipped: full mode only (--quick given)"));
        assert!(!is_skipped("failed: skipped nothing"));
    }
}
