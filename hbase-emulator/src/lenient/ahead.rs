//! The read side of a connection with look-ahead. The Thrift protocol reads through one
//! handle; [`super::Lenient`] peeks through another at a length or element count before
//! the protocol allocates for it, and accepts it only once the bytes it announces have
//! arrived (at least one per element) and fit in the message limit. So memory follows
//! the bytes a client really sent, never a number it claimed.

use std::cell::RefCell;
use std::io::{self, Read};
use std::rc::Rc;

/// Largest message accepted: libthrift's default `TConfiguration.maxMessageSize`, which
/// HBase's Java server applies.
pub const MAX_MESSAGE: usize = 100 * 1024 * 1024;

/// Bytes read from the source at a time.
const CHUNK: usize = 8192;

pub struct Ahead<R>(Rc<RefCell<Inner<R>>>);

struct Inner<R> {
    src: R,
    /// Bytes read from `src` but not yet consumed, from `pos` on.
    buf: Vec<u8>,
    pos: usize,
    /// Bytes consumed since the current message began.
    consumed: usize,
}

impl<R> Clone for Ahead<R> {
    fn clone(&self) -> Self {
        Ahead(self.0.clone())
    }
}

impl<R: Read> Ahead<R> {
    pub fn new(src: R) -> Self {
        Ahead(Rc::new(RefCell::new(Inner { src, buf: Vec::new(), pos: 0, consumed: 0 })))
    }

    pub fn start_message(&self) {
        self.0.borrow_mut().consumed = 0;
    }

    /// Bytes the current message may still take.
    pub fn budget(&self) -> usize {
        MAX_MESSAGE.saturating_sub(self.0.borrow().consumed)
    }

    /// The byte `at` bytes ahead, without consuming anything; `None` at the end of input.
    pub fn peek(&self, at: usize) -> io::Result<Option<u8>> {
        let mut s = self.0.borrow_mut();
        s.fill(at + 1)?;
        Ok(s.buf.get(s.pos + at).copied())
    }

    /// Whether `n` more bytes have arrived (reading until they have or the input ends).
    pub fn has(&self, n: usize) -> io::Result<bool> {
        let mut s = self.0.borrow_mut();
        s.fill(n)?;
        Ok(s.buf.len() - s.pos >= n)
    }
}

impl<R: Read> Inner<R> {
    fn fill(&mut self, n: usize) -> io::Result<()> {
        if self.buf.len() - self.pos >= n {
            return Ok(());
        }
        self.buf.drain(..self.pos);
        self.pos = 0;
        while self.buf.len() < n {
            // Grows with the bytes that arrive, not with `n`: a claim costs nothing.
            let have = self.buf.len();
            self.buf.resize(have + (n - have).clamp(CHUNK, 16 * CHUNK), 0);
            let got = match self.src.read(&mut self.buf[have..]) {
                Ok(got) => got,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => 0,
                Err(e) => {
                    self.buf.truncate(have);
                    return Err(e);
                }
            };
            self.buf.truncate(have + got);
            if got == 0 {
                break;
            }
        }
        Ok(())
    }
}

/// Buffered: small reads (the protocols read a few bytes at a time) come from the buffer.
impl<R: Read> Read for Ahead<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let mut s = self.0.borrow_mut();
        if s.pos == s.buf.len() && out.len() < CHUNK {
            s.fill(1)?;
        }
        let n = if s.pos < s.buf.len() {
            let n = out.len().min(s.buf.len() - s.pos);
            out[..n].copy_from_slice(&s.buf[s.pos..s.pos + n]);
            s.pos += n;
            n
        } else {
            s.src.read(out)?
        };
        s.consumed += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peeks_without_consuming_and_buffers_only_what_arrived() {
        let mut a = Ahead::new(&b"abc"[..]);
        assert_eq!(a.peek(2).unwrap(), Some(b'c'));
        assert_eq!(a.peek(3).unwrap(), None);
        assert!(!a.has(50_000_000).unwrap());
        assert!(a.0.borrow().buf.capacity() < 1 << 20, "a claim of 50 MB allocated nothing like it");
        let mut out = [0u8; 2];
        a.read_exact(&mut out).unwrap();
        assert_eq!(&out, b"ab");
        assert_eq!(a.budget(), MAX_MESSAGE - 2);
        assert_eq!(a.peek(0).unwrap(), Some(b'c'));
        a.start_message();
        assert_eq!(a.budget(), MAX_MESSAGE);
    }
}
