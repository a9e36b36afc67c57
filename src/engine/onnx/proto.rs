//! Just enough of the protobuf wire format to write ONNX: varints, field tags,
//! length-delimited nested messages, packed repeated scalars, raw bytes. Writing only — we
//! never parse ONNX, so no protobuf crate is needed.

/// Wire types (protobuf encoding spec).
const VARINT: u32 = 0;
const I32: u32 = 5;
const LEN: u32 = 2;

/// Append `v` as a base-128 varint, least significant group first.
pub fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// One encoded message, built field by field. Fields are written in call order; protobuf
/// readers accept any order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Msg {
    buf: Vec<u8>,
}

impl Msg {
    pub fn new() -> Self {
        Self::default()
    }

    fn tag(&mut self, field: u32, wire: u32) {
        varint(&mut self.buf, u64::from(field << 3 | wire));
    }

    /// An unsigned varint field (uint64, bool, enum).
    pub fn uint(&mut self, field: u32, v: u64) -> &mut Self {
        self.tag(field, VARINT);
        varint(&mut self.buf, v);
        self
    }

    /// An int64/int32 field: negative values are their two's complement as u64 (10 bytes),
    /// which is what protobuf does for int types (not zigzag).
    pub fn int(&mut self, field: u32, v: i64) -> &mut Self {
        self.uint(field, v as u64)
    }

    /// A `float` field (fixed 32 bits, little-endian).
    pub fn float(&mut self, field: u32, v: f32) -> &mut Self {
        self.tag(field, I32);
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }

    /// A length-delimited `bytes` field.
    pub fn bytes(&mut self, field: u32, b: &[u8]) -> &mut Self {
        self.tag(field, LEN);
        varint(&mut self.buf, b.len() as u64);
        self.buf.extend_from_slice(b);
        self
    }

    pub fn string(&mut self, field: u32, s: &str) -> &mut Self {
        self.bytes(field, s.as_bytes())
    }

    /// A nested message.
    pub fn msg(&mut self, field: u32, m: &Msg) -> &mut Self {
        self.bytes(field, &m.buf)
    }

    /// Repeated int64 in packed form (one length-delimited run of varints). Readers must
    /// accept packed runs for any repeated scalar field, declared packed or not.
    pub fn packed_i64(&mut self, field: u32, vs: &[i64]) -> &mut Self {
        let mut run = Vec::with_capacity(vs.len());
        vs.iter().for_each(|&v| varint(&mut run, v as u64));
        self.bytes(field, &run)
    }

    /// Repeated float in packed form (little-endian f32s back to back).
    pub fn packed_f32(&mut self, field: u32, vs: &[f32]) -> &mut Self {
        let run: Vec<u8> = vs.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.bytes(field, &run)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }

    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(x: u64) -> Vec<u8> {
        let mut out = Vec::new();
        varint(&mut out, x);
        out
    }

    #[test]
    fn varints() {
        assert_eq!(v(0), [0x00]);
        assert_eq!(v(1), [0x01]);
        assert_eq!(v(127), [0x7f]);
        assert_eq!(v(128), [0x80, 0x01]);
        assert_eq!(v(300), [0xAC, 0x02]);
        assert_eq!(v(u64::MAX).len(), 10);
    }

    // The examples of the protobuf encoding guide.
    #[test]
    fn fields() {
        assert_eq!(Msg::new().uint(1, 150).as_bytes(), [0x08, 0x96, 0x01]);
        assert_eq!(
            Msg::new().string(2, "testing").as_bytes(),
            [0x12, 0x07, b't', b'e', b's', b't', b'i', b'n', b'g']
        );
        let mut inner = Msg::new();
        inner.uint(1, 150);
        assert_eq!(
            Msg::new().msg(3, &inner).as_bytes(),
            [0x1a, 0x03, 0x08, 0x96, 0x01]
        );
        assert_eq!(
            Msg::new().packed_i64(4, &[3, 270, 86942]).as_bytes(),
            [0x22, 0x06, 0x03, 0x8E, 0x02, 0x9E, 0xA7, 0x05]
        );
        assert_eq!(
            Msg::new().float(2, 1.0).as_bytes(),
            [0x15, 0x00, 0x00, 0x80, 0x3f]
        );
        assert_eq!(
            Msg::new().packed_f32(7, &[1.0, -2.0]).as_bytes(),
            [0x3a, 0x08, 0, 0, 0x80, 0x3f, 0, 0, 0, 0xc0]
        );
        // Field numbers above 15 take a two-byte tag (AttributeProto.type = 20).
        assert_eq!(Msg::new().uint(20, 2).as_bytes(), [0xa0, 0x01, 0x02]);
    }

    #[test]
    fn negative_int64_is_ten_bytes() {
        let m = Msg::new().int(1, -1).clone();
        assert_eq!(
            m.as_bytes(),
            [
                0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01
            ]
        );
        let p = Msg::new().packed_i64(1, &[-1]).clone();
        assert_eq!(p.len(), 2 + 10);
    }
}
