//! order stage
