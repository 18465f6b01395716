//! krata's guest init. So far the pure half of PID 1 is built: reading the launch config and
//! resolving what to run (argv, environment, identity, working directory) against the image's root.
//! `guest-init plan CONFIG ROOT` prints that resolution as JSON; the node agent's tests use it to
//! check both sides of the config format. The PID 1 runtime (mounts, network, exec, reaping,
//! shutdown, exit reporting) is not written yet.
mod config;
mod plan;
mod process;
mod users;

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
        _ => {
            eprintln!("usage: guest-init plan CONFIG ROOT");
            ExitCode::from(2)
        }
    }
}
