//! Project automation for unidist
