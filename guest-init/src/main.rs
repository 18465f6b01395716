//! krata's guest init. As PID 1 it sets the guest up from its launch config and image disk and runs
//! the container process (runtime.rs). `guest-init plan CONFIG ROOT` prints what it would run, as
//! JSON; the node agent's tests use it to check both sides of the launch config format.
//! `guest-init channel --stdio` serves the guest channel on stdin/stdout in an ordinary process, for
//! tests (channel/).
mod channel;
mod config;
mod cpus;
mod netlink;
mod plan;
mod process;
mod runtime;
mod sys;
mod users;
mod xenbus;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("plan") if args.len() == 4 => match plan::plan_files(&args[2], &args[3]) {
            Ok(json) => {
                println!("{}", json);
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("guest-init: {}", e);
                ExitCode::from(1)
            }
        },
        Some("channel") if args.len() == 3 && args[2] == "--stdio" => ExitCode::from(channel::stdio_main() as u8),
        // The kernel's poweroff_cmd (see runtime::route_shutdown_requests): ask PID 1 to stop.
        Some(runtime::POWEROFF_ARG) => {
            // SAFETY: signalling PID 1, which takes SIGTERM as the shutdown request.
            unsafe { libc::kill(1, libc::SIGTERM) };
            ExitCode::SUCCESS
        }
        // As PID 1 (from the kernel, or a test's PID namespace): the guest's whole life.
        _ if std::process::id() == 1 => {
            runtime::run(&args);
            runtime::power_off()
        }
        _ => {
            eprintln!("usage: guest-init plan CONFIG ROOT | guest-init channel --stdio   (or run as PID 1)");
            ExitCode::from(2)
        }
    }
}
