//! The framed transport's read side as HBase's server configures it: a frame announcing a
//! negative size or more than `hbase.regionserver.thrift.framed.max_frame_size_in_mb`
//! (2 MB by default) is refused before anything is allocated for it. (thrift's
//! `TFramedReadTransport` would allocate and zero whatever size the header claims.)

use std::io::{self, Read};

pub const MAX_FRAME: usize = 2 * 1024 * 1024;

pub struct Framed<R> {
    src: R,
    frame: Vec<u8>,
    pos: usize,
}

impl<R: Read> Framed<R> {
    pub fn new(src: R) -> Self {
        Framed { src, frame: Vec::new(), pos: 0 }
    }
}

impl<R: Read> Read for Framed<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.frame.len() {
            self.frame.clear();
            self.pos = 0;
            let mut size = [0u8; 4];
            let got = self.src.read(&mut size)?;
            if got == 0 {
                return Ok(0); // the end of input, between frames
            }
            self.src.read_exact(&mut size[got..])?;
            let size = i32::from_be_bytes(size);
            let invalid = |m: String| io::Error::new(io::ErrorKind::InvalidData, m);
            if size < 0 {
                return Err(invalid(format!("Read a negative frame size ({size})!")));
            }
            if size as usize > MAX_FRAME {
                return Err(invalid(format!("Frame size ({size}) larger than max length ({MAX_FRAME})!")));
            }
            (&mut self.src).take(size as u64).read_to_end(&mut self.frame)?;
            if self.frame.len() < size as usize {
                self.frame.clear();
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed inside a frame"));
            }
        }
        let n = out.len().min(self.frame.len() - self.pos);
        out[..n].copy_from_slice(&self.frame[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}
