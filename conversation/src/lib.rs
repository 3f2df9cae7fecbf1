//! conversation stage
