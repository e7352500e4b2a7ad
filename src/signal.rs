//! SIGTERM and SIGINT become a readable byte on a socket the event loop polls (the self-pipe
//! trick), so a signal wakes the loop without a race. SIGXFSZ is ignored so that a file-size
//! limit makes a snapshot write fail with EFBIG instead of killing the server.

use std::io;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicI32, Ordering};

use mio::net::UnixStream;

static WAKE_FD: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_signal(_: libc::c_int) {
    let fd = WAKE_FD.load(Ordering::Relaxed);
    if fd >= 0 {
        let byte = 1u8;
        // SAFETY: write(2) is async-signal-safe; the buffer is a live local. A full socket
        // buffer only means a wake-up is already pending.
        unsafe {
            libc::write(fd, (&byte as *const u8).cast(), 1);
        }
    }
}

/// Install the handlers; returns the end the loop must poll for readability.
pub fn install() -> io::Result<UnixStream> {
    let (reader, writer) = UnixStream::pair()?;
    WAKE_FD.store(writer.as_raw_fd(), Ordering::Relaxed);
    // The write end must live as long as the process: the handler may run at any time.
    std::mem::forget(writer);
    for sig in [libc::SIGTERM, libc::SIGINT] {
        // SAFETY: a zeroed sigaction with a valid handler and an empty mask is well-formed.
        let rc = unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as *const () as usize;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut())
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    // SAFETY: setting a signal's disposition to SIG_IGN has no preconditions.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
    Ok(reader)
}
