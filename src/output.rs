//! A command's output on stdout. A reader that goes away (`tocsin incidents list | head -1`)
//! ends the output quietly: the rest is not written, and the command ends with the status it
//! would have had. (`println!` panics there, with a backtrace hint.)

use std::io::{ErrorKind, Write};
use std::sync::atomic::{AtomicBool, Ordering};

/// Set once stdout took no more: nothing else is written.
static CLOSED: AtomicBool = AtomicBool::new(false);

/// Write `text` to stdout, at once.
pub fn write(text: &str) {
    if CLOSED.load(Ordering::Relaxed) {
        return;
    }
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        CLOSED.store(true, Ordering::Relaxed);
        if e.kind() != ErrorKind::BrokenPipe {
            eprintln!("tocsin: cannot write the output: {e}");
        }
    }
}

/// `println!` through [`write`].
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::output::write(&format!("{}\n", format_args!($($arg)*)))
    };
}
pub(crate) use outln;
