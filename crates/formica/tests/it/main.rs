//! The `formica` binary's integration tests, in one test binary to save link time.

mod crash;
mod crash_loop;
mod sdk;
mod secrets;
mod serve;
mod sim;
