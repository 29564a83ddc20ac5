//! Finding where a value sits in a YAML file, by its path (`routes[2].policy`).
//!
//! Items are deserialized one by one from a parsed tree so that one bad item does not hide the
//! errors of the next; the tree has no positions, so positions are recovered afterwards: a
//! walker descends the file's own YAML events to the path and fails there on purpose, and the
//! YAML parser stamps that failure with the line and column of the value (or key) it was on.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// One step of a path into a YAML document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Seg {
    Key(String),
    Index(usize),
}

/// A path into a YAML document, e.g. `groups[0].rules[3].for`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Path(pub Vec<Seg>);

impl Path {
    pub fn root() -> Self {
        Path(Vec::new())
    }

    pub fn key(&self, key: &str) -> Self {
        let mut segs = self.0.clone();
        segs.push(Seg::Key(key.to_string()));
        Path(segs)
    }

    pub fn index(&self, index: usize) -> Self {
        let mut segs = self.0.clone();
        segs.push(Seg::Index(index));
        Path(segs)
    }

    /// Append a path reported by `serde_path_to_error` relative to this one.
    pub fn join(&self, inner: &serde_path_to_error::Path) -> Self {
        let mut segs = self.0.clone();
        for seg in inner.iter() {
            match seg {
                serde_path_to_error::Segment::Seq { index } => segs.push(Seg::Index(*index)),
                serde_path_to_error::Segment::Map { key } => segs.push(Seg::Key(key.clone())),
                serde_path_to_error::Segment::Enum { variant } => {
                    segs.push(Seg::Key(variant.clone()))
                }
                serde_path_to_error::Segment::Unknown => {}
            }
        }
        Path(segs)
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Key(k) if i == 0 => write!(f, "{k}")?,
                Seg::Key(k) => write!(f, ".{k}")?,
                Seg::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

const MARK: &str = "\u{0}tocsin-locate\u{0}";

/// Line and column (1-based) of the value at `path`, or of the key that names it when
/// `at_key` is set. Falls back to the deepest enclosing value that exists.
pub fn locate(text: &str, path: &Path, at_key: bool) -> (usize, usize) {
    let mut segs: &[Seg] = &path.0;
    loop {
        if let Some(index) = locate_exact(text, segs) {
            // The parser marks values; a key is the last mention of its name before its value.
            if at_key && segs.len() == path.0.len() {
                if let Some(Seg::Key(key)) = segs.last() {
                    if let Some(key_index) = find_key_before(text, key, index) {
                        return line_column(text, key_index);
                    }
                }
            }
            return line_column(text, index);
        }
        if segs.is_empty() {
            return (1, 1);
        }
        segs = &segs[..segs.len() - 1];
    }
}

fn find_key_before(text: &str, key: &str, before: usize) -> Option<usize> {
    let head = &text[..before.min(text.len())];
    let mut end = head.len();
    while let Some(found) = head[..end].rfind(key) {
        let after = head[found + key.len()..]
            .trim_start_matches(['"', '\''])
            .trim_start();
        if after.starts_with(':') {
            return Some(found);
        }
        end = found;
    }
    None
}

fn line_column(text: &str, index: usize) -> (usize, usize) {
    let head = &text[..index.min(text.len())];
    let line = head.matches('\n').count() + 1;
    let column = head.len() - head.rfind('\n').map(|i| i + 1).unwrap_or(0) + 1;
    (line, column)
}

fn locate_exact(text: &str, segs: &[Seg]) -> Option<usize> {
    let de = serde_yaml::Deserializer::from_str(text);
    match (Walk { segs }).deserialize(de) {
        Err(e) if e.to_string().contains(MARK) => e.location().map(|loc| loc.index()),
        _ => None,
    }
}

struct Walk<'a> {
    segs: &'a [Seg],
}

impl<'de> DeserializeSeed<'de> for Walk<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        if self.segs.is_empty() {
            // Fail while positioned on this value: the parser stamps the error with its mark.
            return d.deserialize_any(FailHere);
        }
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let Seg::Key(target) = &self.segs[0] else {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            return Ok(());
        };
        while let Some(found) = map.next_key_seed(KeySeed { target })? {
            if found {
                return map.next_value_seed(Walk {
                    segs: &self.segs[1..],
                });
            }
            map.next_value::<IgnoredAny>()?;
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let Seg::Index(target) = self.segs[0] else {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            return Ok(());
        };
        let mut index = 0;
        loop {
            if index == target {
                return seq
                    .next_element_seed(Walk {
                        segs: &self.segs[1..],
                    })
                    .map(|_| ());
            }
            if seq.next_element::<IgnoredAny>()?.is_none() {
                return Ok(());
            }
            index += 1;
        }
    }

    // Scalars: the path goes deeper than the document does.
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
}

struct KeySeed<'a> {
    target: &'a str,
}

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a key")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<bool, E> {
        Ok(key == self.target)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<bool, E> {
        self.visit_str(&v.to_string())
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<bool, E> {
        self.visit_str(&v.to_string())
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<bool, E> {
        self.visit_str(&v.to_string())
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<bool, E> {
        self.visit_str(&v.to_string())
    }
    fn visit_unit<E: de::Error>(self) -> Result<bool, E> {
        self.visit_str("null")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(false)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(false)
    }
}

struct FailHere;

impl<'de> Visitor<'de> for FailHere {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Err(E::custom(MARK))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Err(E::custom(MARK))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Err(E::custom(MARK))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Err(E::custom(MARK))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Err(E::custom(MARK))
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Err(E::custom(MARK))
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Err(E::custom(MARK))
    }
    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(de::Error::custom(MARK))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(de::Error::custom(MARK))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "\
server:
  listen: 127.0.0.1:1
routes:
  - match: ['a=\"b\"']
    policy: storage
  - { match: [], policy: other }
";

    #[test]
    fn finds_values_and_keys() {
        let p = Path::root().key("routes").index(0).key("policy");
        assert_eq!(locate(DOC, &p, false), (5, 13));
        assert_eq!(locate(DOC, &p, true), (5, 5));
        let p = Path::root().key("routes").index(1).key("policy");
        assert_eq!(locate(DOC, &p, false), (6, 26));
        let p = Path::root().key("server").key("listen");
        assert_eq!(locate(DOC, &p, false), (2, 11));
    }

    #[test]
    fn missing_path_falls_back_to_parent() {
        let p = Path::root().key("routes").index(1).key("queue");
        assert_eq!(locate(DOC, &p, false), (6, 5));
    }
}
