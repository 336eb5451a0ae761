//! The MPI backend's liveness bound: how long a peer may stay silent before it is lost.

use crate::decode;
use crate::error::Result;
use crate::parameter::{inherent_api, Parameter, Slot};

use super::{check_float, decode_float};

/// The accepted seconds of `UNIDIST_MPI_HEARTBEAT`: below one second a busy, oversubscribed
/// host could be taken for a lost one; a day is far longer than any useful bound.
const RANGE: std::ops::RangeInclusive<f64> = 1.0..=86_400.0;

/// How many seconds a peer of the MPI backend may stay silent before it is declared lost:
/// `UNIDIST_MPI_HEARTBEAT`, a finite decimal number from 1 to 86400.
///
/// Default: 10. Any message counts as a sign of life; a peer that this rank sent nothing to for
/// a while gets a small beacon, so that a busy job pays nothing for the check. A peer found
/// silent this long (its host crashed or its link went down) is lost: its error says that it
/// stopped answering, where a peer whose process is seen to end is lost at once and its error
/// says so.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MpiHeartbeat;

impl Parameter for MpiHeartbeat {
    type Value = f64;
    const NAME: &'static str = "MpiHeartbeat";
    const VARNAME: &'static str = "UNIDIST_MPI_HEARTBEAT";
    const TYPE_NAME: &'static str = "float (seconds)";
    const EXPECTED: &'static str =
        "a finite decimal number of seconds between 1 and 86400 (e.g. 10 or 2.5)";
    const HELP: &'static str = "mpi: seconds of silence after which a peer is declared lost";

    fn default_value() -> f64 {
        10.0
    }

    fn decode(variable: &str, raw: &str) -> Result<f64> {
        decode_float(variable, raw, RANGE, Self::EXPECTED)
    }

    fn validate(value: f64) -> Result<f64> {
        check_float(Self::VARNAME, value, RANGE, Self::EXPECTED)
    }

    fn encode(value: &f64) -> Option<String> {
        Some(decode::encode_float(*value))
    }

    fn slot() -> &'static Slot<f64> {
        static SLOT: Slot<f64> = Slot::new();
        &SLOT
    }
}
inherent_api!(MpiHeartbeat);
