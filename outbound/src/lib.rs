//! outbound stage
