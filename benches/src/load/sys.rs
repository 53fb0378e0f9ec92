//! The one operating-system call the load generator needs beyond sockets: pinning itself to
//! a core, so that it never competes with the server it measures.

/// Pins the calling thread, and every thread it starts afterwards, to core `cpu`.
#[allow(unsafe_code)] // sched_setaffinity; see the SAFETY comments.
pub fn pin_to_cpu(cpu: usize) -> std::io::Result<()> {
    if cpu >= libc::CPU_SETSIZE as usize {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("core {cpu} is beyond the CPU set size"),
        ));
    }
    // SAFETY: cpu_set_t is a plain bit array for which all-zero bytes are the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `cpu` is below CPU_SETSIZE (checked above), so CPU_SET stays inside `set`.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: `set` is a valid cpu_set_t of the size passed; pid 0 is the calling thread.
    let result = unsafe { libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set) };
    if result == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}
