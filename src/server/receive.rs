//! Reading a socket together with when its bytes arrived: the kernel
//! stamps each received packet (`SO_TIMESTAMPNS`), and `recvmsg` hands the
//! stamp of the last one read, so the server can tell how long a request
//! waited in the socket before a thread read it ([`crate::engine::stages`]).
//! The stamp is on the wall clock; its age is taken against the wall
//! clock read right after the read.

use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

/// Asks the kernel to stamp the packets `fd` receives. Without it (the
/// call fails) reads simply carry no arrival time.
pub fn stamp_arrivals(fd: RawFd) {
    let on: libc::c_int = 1;
    // SAFETY: a valid option value of the size given.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMPNS,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// Room for one `SCM_TIMESTAMPNS` control message.
const CONTROL: usize = 64;

/// Reads into `buf` once: the bytes read, and how long ago the last of
/// them arrived in the socket, if the kernel said.
pub fn recv(fd: RawFd, buf: &mut [u8]) -> io::Result<(usize, Option<Duration>)> {
    let mut control = [0u64; CONTROL / 8];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: zeroed msghdr is valid; the pointers set below outlive the call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = CONTROL as _;
    // SAFETY: msg describes buffers valid for the call.
    let n = unsafe { libc::recvmsg(fd, &mut msg, 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((n as usize, age(&msg)))
}

/// The age of the arrival stamp in `msg`'s control messages.
fn age(msg: &libc::msghdr) -> Option<Duration> {
    // SAFETY: msg was filled by recvmsg; the CMSG macros walk within it.
    let stamp = unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(msg);
        let mut found = None;
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_TIMESTAMPNS
            {
                found = Some(std::ptr::read_unaligned(
                    libc::CMSG_DATA(cmsg) as *const libc::timespec
                ));
                break;
            }
            cmsg = libc::CMSG_NXTHDR(msg, cmsg);
        }
        found?
    };
    let stamped = Duration::new(stamp.tv_sec as u64, stamp.tv_nsec as u32);
    Some(wall_clock().saturating_sub(stamped))
}

fn wall_clock() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid timespec to write into.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::AsRawFd;

    #[test]
    fn a_read_says_how_long_its_bytes_waited_in_the_socket() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        stamp_arrivals(server.as_raw_fd());
        let waited = Duration::from_millis(30);
        // The kernel turns stamping on for the whole system a moment after
        // the first socket asks (a deferred work item): the first packets
        // may come unstamped.
        for _ in 0..20 {
            client.write_all(b"get a\r\n").unwrap();
            std::thread::sleep(waited);
            let mut buf = [0u8; 64];
            let (n, age) = recv(server.as_raw_fd(), &mut buf).unwrap();
            assert_eq!(&buf[..n], b"get a\r\n");
            if let Some(age) = age {
                assert!(age >= waited, "waited {age:?} in the socket");
                assert!(age < Duration::from_secs(10), "{age:?}");
                return;
            }
        }
        panic!("no read carried an arrival stamp");
    }
}
