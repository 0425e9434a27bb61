//! A minimal, strict CBOR (RFC 8949) decoder for WebAuthn: attestation objects, COSE keys and
//! authenticator extensions. It reads definite lengths only; integers (unsigned and negative, to
//! 64 bits), byte and text strings, arrays, maps whose keys are integers or text (no key twice),
//! and the simple values false, true and null. Tags, floats, `undefined`, indefinite lengths and
//! reserved encodings are refused, nesting stops at [`MAX_DEPTH`] and a map at [`MAX_MAP_ENTRIES`].
//!
//! Every length is checked against the input left before anything is read or allocated, and
//! every decoded item carries its exact bytes ([`Item::raw`]): WebAuthn stores a COSE key as the
//! authenticator encoded it.

/// The deepest nesting accepted: a map in a map counts 2.
pub const MAX_DEPTH: usize = 8;
/// The most entries of one map (duplicate keys are looked for pairwise; WebAuthn maps hold a
/// handful).
pub const MAX_MAP_ENTRIES: usize = 64;

/// Why some bytes are not CBOR this decoder accepts. The message names the rule, never the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid CBOR: {0}")]
pub struct Error(pub &'static str);

/// A decoded value. Strings borrow from the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value<'a> {
    /// Major types 0 and 1: from -2^64 to 2^64 - 1.
    Int(i128),
    Bytes(&'a [u8]),
    Text(&'a str),
    Array(Vec<Item<'a>>),
    /// Entries in the order of the input; keys are `Int` or `Text`, each once.
    Map(Vec<(Item<'a>, Item<'a>)>),
    Bool(bool),
    Null,
}

/// A value and the exact bytes it was decoded from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item<'a> {
    pub value: Value<'a>,
    pub raw: &'a [u8],
}

impl<'a> Item<'a> {
    /// The entries, if this is a map.
    pub fn as_map(&self) -> Option<&[(Item<'a>, Item<'a>)]> {
        match &self.value {
            Value::Map(entries) => Some(entries),
            _ => None,
        }
    }

    /// The value under integer key `key`, if this is a map holding it.
    pub fn get_int(&self, key: i128) -> Option<&Item<'a>> {
        self.as_map()?
            .iter()
            .find(|(k, _)| k.value == Value::Int(key))
            .map(|(_, v)| v)
    }

    /// The value under text key `key`, if this is a map holding it.
    pub fn get_text(&self, key: &str) -> Option<&Item<'a>> {
        self.as_map()?
            .iter()
            .find(|(k, _)| k.value == Value::Text(key))
            .map(|(_, v)| v)
    }

    pub fn as_int(&self) -> Option<i128> {
        match self.value {
            Value::Int(i) => Some(i),
            _ => None,
        }
    }

    pub fn as_bytes(&self) -> Option<&'a [u8]> {
        match self.value {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }

    pub fn as_text(&self) -> Option<&'a str> {
        match self.value {
            Value::Text(t) => Some(t),
            _ => None,
        }
    }
}

/// The first item of `input` and the bytes after it.
pub fn decode(input: &[u8]) -> Result<(Item<'_>, &[u8]), Error> {
    let mut reader = Reader { input, pos: 0 };
    let item = reader.item(1)?;
    Ok((item, &input[reader.pos..]))
}

/// `input` as exactly one item: trailing bytes are refused.
pub fn decode_exact(input: &[u8]) -> Result<Item<'_>, Error> {
    match decode(input)? {
        (item, []) => Ok(item),
        _ => Err(Error("trailing bytes")),
    }
}

struct Reader<'a> {
    input: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn left(&self) -> usize {
        self.input.len() - self.pos
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], Error> {
        if n > self.left() {
            return Err(Error("truncated"));
        }
        let out = &self.input[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    /// The argument of an initial byte's additional information (RFC 8949 §3).
    fn argument(&mut self, info: u8) -> Result<u64, Error> {
        Ok(match info {
            0..=23 => u64::from(info),
            24 => u64::from(self.take(1)?[0]),
            25 => u64::from(u16::from_be_bytes(
                self.take(2)?.try_into().expect("2 bytes"),
            )),
            26 => u64::from(u32::from_be_bytes(
                self.take(4)?.try_into().expect("4 bytes"),
            )),
            27 => u64::from_be_bytes(self.take(8)?.try_into().expect("8 bytes")),
            31 => return Err(Error("indefinite length")),
            _ => return Err(Error("reserved additional information")),
        })
    }

    /// A length that the input left can hold, at `min_bytes` per element.
    fn length(&mut self, info: u8, min_bytes: usize) -> Result<usize, Error> {
        let n = self.argument(info)?;
        match usize::try_from(n) {
            Ok(n) if n.checked_mul(min_bytes).is_some_and(|b| b <= self.left()) => Ok(n),
            _ => Err(Error("length beyond the input")),
        }
    }

    fn item(&mut self, depth: usize) -> Result<Item<'a>, Error> {
        if depth > MAX_DEPTH {
            return Err(Error("nested too deeply"));
        }
        let start = self.pos;
        let initial = self.take(1)?[0];
        let (major, info) = (initial >> 5, initial & 0x1f);
        let value = match major {
            0 => Value::Int(i128::from(self.argument(info)?)),
            1 => Value::Int(-1 - i128::from(self.argument(info)?)),
            2 => {
                let n = self.length(info, 1)?;
                Value::Bytes(self.take(n)?)
            }
            3 => {
                let n = self.length(info, 1)?;
                let bytes = self.take(n)?;
                Value::Text(std::str::from_utf8(bytes).map_err(|_| Error("text is not UTF-8"))?)
            }
            4 => {
                let n = self.length(info, 1)?;
                // No capacity reserved from the claimed count: the vector grows only with items
                // actually read.
                let mut items = Vec::new();
                for _ in 0..n {
                    items.push(self.item(depth + 1)?);
                }
                Value::Array(items)
            }
            5 => {
                let n = self.length(info, 2)?;
                if n > MAX_MAP_ENTRIES {
                    return Err(Error("map too large"));
                }
                let mut entries: Vec<(Item<'a>, Item<'a>)> = Vec::new();
                for _ in 0..n {
                    let key = self.item(depth + 1)?;
                    if !matches!(key.value, Value::Int(_) | Value::Text(_)) {
                        return Err(Error("map key neither integer nor text"));
                    }
                    if entries.iter().any(|(k, _)| k.value == key.value) {
                        return Err(Error("duplicate map key"));
                    }
                    let value = self.item(depth + 1)?;
                    entries.push((key, value));
                }
                Value::Map(entries)
            }
            6 => return Err(Error("tags are not accepted")),
            _ => match info {
                20 => Value::Bool(false),
                21 => Value::Bool(true),
                22 => Value::Null,
                25..=27 => return Err(Error("floats are not accepted")),
                31 => return Err(Error("unexpected break")),
                _ => return Err(Error("simple value not accepted")),
            },
        };
        Ok(Item {
            value,
            raw: &self.input[start..self.pos],
        })
    }
}

#[cfg(test)]
pub(crate) mod test_encoder {
    //! A tiny encoder for tests: shortest-form heads, items written in the order given.

    pub fn head(major: u8, n: u64) -> Vec<u8> {
        let m = major << 5;
        match n {
            0..=23 => vec![m | n as u8],
            24..=0xff => vec![m | 24, n as u8],
            0x100..=0xffff => [vec![m | 25], (n as u16).to_be_bytes().to_vec()].concat(),
            0x1_0000..=0xffff_ffff => [vec![m | 26], (n as u32).to_be_bytes().to_vec()].concat(),
            _ => [vec![m | 27], n.to_be_bytes().to_vec()].concat(),
        }
    }

    pub fn int(i: i64) -> Vec<u8> {
        if i >= 0 {
            head(0, i as u64)
        } else {
            head(1, (-1 - i) as u64)
        }
    }

    pub fn bytes(b: &[u8]) -> Vec<u8> {
        [head(2, b.len() as u64), b.to_vec()].concat()
    }

    pub fn text(s: &str) -> Vec<u8> {
        [head(3, s.len() as u64), s.as_bytes().to_vec()].concat()
    }

    pub fn array(items: &[Vec<u8>]) -> Vec<u8> {
        [head(4, items.len() as u64), items.concat()].concat()
    }

    /// `entries` are (encoded key, encoded value) pairs.
    pub fn map(entries: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
        let mut out = head(5, entries.len() as u64);
        for (k, v) in entries {
            out.extend_from_slice(k);
            out.extend_from_slice(v);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::test_encoder::*;
    use super::*;

    #[test]
    fn webauthn_cbor_reads_every_accepted_kind_with_its_exact_bytes() {
        let key = map(&[
            (int(1), int(2)),
            (int(-1), int(1)),
            (text("k"), bytes(b"xyz")),
            (
                int(3),
                array(&[int(-257), vec![0xf4], vec![0xf5], vec![0xf6]]),
            ),
        ]);
        let input = [key.clone(), vec![0x00, 0x01]].concat();
        let (item, rest) = decode(&input).unwrap();
        assert_eq!(item.raw, &key[..]);
        assert_eq!(rest, &[0x00, 0x01]);
        assert_eq!(item.get_int(1).unwrap().as_int(), Some(2));
        assert_eq!(item.get_int(-1).unwrap().as_int(), Some(1));
        assert_eq!(item.get_text("k").unwrap().as_bytes(), Some(&b"xyz"[..]));
        let Value::Array(a) = &item.get_int(3).unwrap().value else {
            panic!("not an array")
        };
        assert_eq!(a[0].as_int(), Some(-257));
        assert_eq!(a[1].value, Value::Bool(false));
        assert_eq!(a[2].value, Value::Bool(true));
        assert_eq!(a[3].value, Value::Null);
        assert_eq!(a[0].raw, &int(-257)[..]);
        assert!(decode_exact(&input).is_err());
        assert!(decode_exact(&key).is_ok());
    }

    #[test]
    fn webauthn_cbor_reads_64_bit_integers_at_both_ends() {
        let max = [vec![0x1b], u64::MAX.to_be_bytes().to_vec()].concat();
        assert_eq!(
            decode_exact(&max).unwrap().as_int(),
            Some(i128::from(u64::MAX))
        );
        let min = [vec![0x3b], u64::MAX.to_be_bytes().to_vec()].concat();
        assert_eq!(
            decode_exact(&min).unwrap().as_int(),
            Some(-1 - i128::from(u64::MAX))
        );
    }

    #[test]
    fn webauthn_cbor_refuses_indefinite_lengths() {
        for input in [
            &[0x5f, 0x41, 0x00, 0xff][..], // byte string
            &[0x7f, 0x61, 0x61, 0xff],     // text string
            &[0x9f, 0x01, 0xff],           // array
            &[0xbf, 0x01, 0x02, 0xff],     // map
            &[0xff],                       // a lone break
        ] {
            assert!(decode(input).is_err(), "{input:02x?}");
        }
    }

    #[test]
    fn webauthn_cbor_refuses_nesting_beyond_the_limit() {
        let mut deep = int(0);
        for _ in 0..MAX_DEPTH - 1 {
            deep = array(&[deep]);
        }
        assert!(decode_exact(&deep).is_ok());
        let too_deep = array(&[deep]);
        assert_eq!(decode_exact(&too_deep), Err(Error("nested too deeply")));
        // A million nested arrays fail at the limit, not on the stack.
        let bomb = vec![0x81u8; 1_000_000];
        assert!(decode(&bomb).is_err());
    }

    #[test]
    fn webauthn_cbor_refuses_lengths_beyond_the_input_before_allocating() {
        let beyond = Err(Error("length beyond the input"));
        // A byte string, a text string, an array and a map claiming 2^64 - 1 elements.
        for major in [2u8, 3, 4, 5] {
            let input = [head(major, u64::MAX), vec![0; 8]].concat();
            assert_eq!(decode(&input).map(|_| ()), beyond, "major {major}");
        }
        // One byte too few.
        assert_eq!(decode(&[0x43, 1, 2]).map(|_| ()), beyond);
        // A map of 2 entries needs at least 4 bytes.
        assert_eq!(decode(&[0xa2, 1, 2, 3]).map(|_| ()), beyond);
        // More entries than a map may hold, though the input has room for them.
        let big = map(&(0..=MAX_MAP_ENTRIES as i64)
            .map(|i| (int(i), int(0)))
            .collect::<Vec<_>>());
        assert_eq!(decode(&big).map(|_| ()), Err(Error("map too large")));
        // A truncated head.
        assert_eq!(decode(&[0x19, 1]).map(|_| ()), Err(Error("truncated")));
        assert_eq!(decode(&[]).map(|_| ()), Err(Error("truncated")));
    }

    #[test]
    fn webauthn_cbor_refuses_tags_floats_odd_keys_and_duplicates() {
        for input in [
            vec![0xc2, 0x41, 0x01],                     // tag 2 (bignum)
            vec![0xf9, 0x3c, 0x00],                     // half float 1.0
            vec![0xfb, 0, 0, 0, 0, 0, 0, 0, 0],         // double
            vec![0xf7],                                 // undefined
            vec![0xf0],                                 // simple 16
            vec![0x1c],                                 // reserved additional information
            vec![0x62, 0xff, 0xfe],                     // text that is not UTF-8
            map(&[(bytes(b"k"), int(1))]),              // byte-string key
            map(&[(vec![0xf6], int(1))]),               // null key
            map(&[(int(1), int(1)), (int(1), int(2))]), // duplicate key
            map(&[(text("a"), int(1)), (text("a"), int(2))]),
        ] {
            assert!(decode(&input).is_err(), "{input:02x?}");
        }
    }
}
