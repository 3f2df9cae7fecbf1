//! Every `waiterctl` command run as a command: the built binary against a
//! test database and bus namespace of its own, its output and exit status
//! checked, errors included.

mod branches;
mod common;
mod customer;
mod menus;
mod restaurants;
mod secrets;
mod templates;
mod tools;
mod webhooks;
