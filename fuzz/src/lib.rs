//! Fuzz targets of unidist: the codec (`unidist-serialize`) and the MPI receive path
//! (`unidist-mpi`'s wire module). Built and run by `cargo xtask fuzz`; each target's body lives
//! here so that the committed corpus can also be replayed by ordinary tests.

pub mod codec;
pub mod wire;
