//! `tasklens-testkit pg-up DIR` initialises and starts a PostgreSQL server under DIR
//! on a free loopback port and prints its admin URL; `pg-down DIR` stops it by PID.
//! `pg-fresh-db` creates an empty database on the server at `TASKLENS_TEST_PG_URL`
//! and prints its URL (for the Python SDK's tests).
//! The README's test command uses these so the whole suite shares one server.

use std::path::PathBuf;

use testkit::PgCluster;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [cmd, dir] if cmd == "pg-up" => {
            let root = PathBuf::from(dir);
            std::fs::create_dir_all(&root).expect("create the cluster directory");
            let cluster = PgCluster::init(&root);
            cluster.start_server();
            std::fs::write(root.join("port"), cluster.port.to_string()).expect("write port");
            println!("{}", cluster.admin_url());
        }
        [cmd, dir] if cmd == "pg-down" => {
            let data = PathBuf::from(dir).join("data");
            let pid = std::fs::read_to_string(data.join("postmaster.pid"))
                .ok()
                .and_then(|t| t.lines().next().and_then(|l| l.trim().parse::<i32>().ok()));
            if let Some(pid) = pid {
                unsafe { libc::kill(pid, libc::SIGINT) };
                for _ in 0..200 {
                    if unsafe { libc::kill(pid, 0) } != 0 {
                        break;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
            }
        }
        [cmd] if cmd == "pg-fresh-db" => {
            let admin = std::env::var("TASKLENS_TEST_PG_URL")
                .expect("TASKLENS_TEST_PG_URL names the PostgreSQL server");
            let name = format!("tl_py_{}", uuid::Uuid::new_v4().simple());
            testkit::create_database(&admin, &name);
            println!("{}", testkit::replace_database(&admin, &name));
        }
        _ => {
            eprintln!("usage: tasklens-testkit pg-up DIR | pg-down DIR | pg-fresh-db");
            std::process::exit(2);
        }
    }
}
