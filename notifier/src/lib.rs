//! notifier stage
