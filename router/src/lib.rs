//! router stage
