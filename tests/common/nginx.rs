//! nginx for integration tests: one process (`master_process off`, run as root) on a free
//! 127.0.0.1 port, its configuration, pid, logs and temporary files under a folder the test
//! owns; listening when [`Nginx::start`] returns, killed in Drop.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::mount::wait_until;

/// Longest nginx may take to listen.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// A running nginx.
pub struct Nginx {
    child: Child,
    /// The port it listens on, on 127.0.0.1.
    pub port: u16,
    prefix: PathBuf,
}

impl Nginx {
    /// Starts nginx with its prefix in `prefix` and one server listening on a free port with
    /// the `listen` parameters given (`ssl`, or nothing) and the directives of `server`.
    pub fn start(prefix: &Path, listen: &str, server: &str) -> Nginx {
        Nginx::start_http(prefix, |port| format!("server {{ listen 127.0.0.1:{port} {listen};\n{server}\n}}"))
    }

    /// Starts nginx with its prefix in `prefix` and the directives `http` makes, for the free
    /// port it is given, inside the `http` block (a server listening on that port among them).
    pub fn start_http(prefix: &Path, http: impl FnOnce(u16) -> String) -> Nginx {
        let binary = ["/usr/sbin/nginx", "/usr/bin/nginx"].into_iter().find(|p| Path::new(p).exists());
        let binary = binary.expect("nginx is needed for this test (apt-get install nginx-light or nginx)");
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        std::fs::create_dir_all(prefix.join("logs")).unwrap();
        let conf = prefix.join("nginx.conf");
        std::fs::write(
            &conf,
            format!(
                "user root;\nmaster_process off;\npid {p}/nginx.pid;\nerror_log {p}/logs/error.log;\n\
                 events {{ worker_connections 256; }}\n\
                 http {{ access_log off;\n\
                 client_body_temp_path {p}; proxy_temp_path {p}; fastcgi_temp_path {p}; uwsgi_temp_path {p}; scgi_temp_path {p};\n\
                 {http}\n}}\n",
                p = prefix.display(),
                http = http(port),
            ),
        )
        .unwrap();
        let child = Command::new(binary)
            .arg("-c")
            .arg(&conf)
            .arg("-p")
            .arg(prefix)
            .args(["-g", "daemon off;"])
            .stdin(Stdio::null())
            .spawn()
            .expect("cannot start nginx");
        let mut nginx = Nginx { child, port, prefix: prefix.to_path_buf() };
        let up = wait_until(START_TIMEOUT, || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() || nginx.exited()
        });
        assert!(up && !nginx.exited(), "nginx did not start: {}", nginx.error_log());
        nginx
    }

    fn exited(&mut self) -> bool {
        self.child.try_wait().ok().flatten().is_some()
    }

    /// Its error log so far.
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.prefix.join("logs/error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // One process (master_process off): nothing is left once it is gone.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
