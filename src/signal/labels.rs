//! `LabelSet`: the labels (or annotations) of one signal, compact.
//!
//! Names and values sit back to back in one string, sorted by name, with one small array of
//! where each ends: two allocations for a whole set. A set of five labels as a
//! `Vec<(String, String)>` takes eleven allocations and ~560 bytes; here it takes two and
//! ~120 bytes, which counts with 100,000 open incidents and with every refresh that replaces
//! an alert's signal.
//!
//! Reads like a `BTreeMap<String, String>` of `&str`s; (de)serialized as a JSON object, so
//! stored rows and API answers are the same as the map's. Deserializing borrows the names
//! and values from the input where it can, and copies each once into the set.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Name → value pairs sorted by name, each name once.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct LabelSet {
    /// Every name and value, in name order: `name0 value0 name1 value1 …` without gaps.
    text: Box<str>,
    /// Per pair, where its name ends and where its value ends, in bytes into `text`.
    ends: Box<[(u32, u32)]>,
}

impl LabelSet {
    pub fn new() -> Self {
        LabelSet::default()
    }

    /// From pairs sorted by name with no name twice (not checked beyond debug builds).
    fn from_sorted<K: AsRef<str>, V: AsRef<str>>(pairs: &[(K, V)]) -> Self {
        debug_assert!(pairs.windows(2).all(|w| w[0].0.as_ref() < w[1].0.as_ref()));
        let size: usize = pairs
            .iter()
            .map(|(k, v)| k.as_ref().len() + v.as_ref().len())
            .sum();
        let size = u32::try_from(size).expect("labels under 4 GiB");
        let mut text = String::with_capacity(size as usize);
        let mut ends = Vec::with_capacity(pairs.len());
        for (k, v) in pairs {
            text.push_str(k.as_ref());
            let name_end = text.len() as u32;
            text.push_str(v.as_ref());
            ends.push((name_end, text.len() as u32));
        }
        LabelSet {
            text: text.into_boxed_str(),
            ends: ends.into_boxed_slice(),
        }
    }

    /// From pairs in any order; of a name given twice, the last value counts (as a map's
    /// insert, or a JSON object read into a map).
    fn from_unsorted<K: AsRef<str>, V: AsRef<str>>(mut pairs: Vec<(K, V)>) -> Self {
        // Stable: pairs of one name keep their order, and the last of them is kept.
        pairs.sort_by(|a, b| a.0.as_ref().cmp(b.0.as_ref()));
        let mut kept: Vec<(K, V)> = Vec::with_capacity(pairs.len());
        for pair in pairs {
            match kept.last_mut() {
                Some(last) if last.0.as_ref() == pair.0.as_ref() => *last = pair,
                _ => kept.push(pair),
            }
        }
        LabelSet::from_sorted(&kept)
    }

    /// Where pair `i` starts in `text`: where the one before it ends.
    fn start(&self, i: usize) -> usize {
        i.checked_sub(1)
            .map_or(0, |before| self.ends[before].1 as usize)
    }

    fn pair(&self, i: usize) -> (&str, &str) {
        let start = self.start(i);
        let (name_end, value_end) = self.ends[i];
        (
            &self.text[start..name_end as usize],
            &self.text[name_end as usize..value_end as usize],
        )
    }

    /// The name of pair `i`, as bytes (slicing bytes skips the char-boundary checks of
    /// slicing a str; the bytes compare in the same order).
    fn name_bytes(&self, i: usize) -> &[u8] {
        let start = self.start(i);
        &self.text.as_bytes()[start..self.ends[i].0 as usize]
    }

    fn find(&self, name: &str) -> Result<usize, usize> {
        let (mut low, mut high) = (0, self.ends.len());
        while low < high {
            let mid = (low + high) / 2;
            match self.name_bytes(mid).cmp(name.as_bytes()) {
                std::cmp::Ordering::Less => low = mid + 1,
                std::cmp::Ordering::Greater => high = mid,
                std::cmp::Ordering::Equal => return Ok(mid),
            }
        }
        Err(low)
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.find(name).ok().map(|i| self.pair(i).1)
    }

    /// Set `name`; returns the value it replaced. Rebuilds the set: labels are set while a
    /// signal is made, not on the engine's hot path.
    pub fn insert(&mut self, name: String, value: String) -> Option<String> {
        let old = self.get(&name).map(str::to_string);
        let mut pairs: Vec<(&str, &str)> = self.iter().filter(|(k, _)| *k != name).collect();
        let at = pairs.partition_point(|(k, _)| *k < name.as_str());
        pairs.insert(at, (&name, &value));
        *self = LabelSet::from_sorted(&pairs);
        old
    }

    /// Is every pair of this set also in `other`? (Both are sorted: one merge pass.)
    pub fn is_subset_of(&self, other: &LabelSet) -> bool {
        let mut theirs = other.iter();
        'mine: for (k, v) in self.iter() {
            for (ok, ov) in theirs.by_ref() {
                match ok.cmp(k) {
                    std::cmp::Ordering::Less => continue,
                    std::cmp::Ordering::Equal if ov == v => continue 'mine,
                    _ => return false,
                }
            }
            return false;
        }
        true
    }

    /// The pairs both sets hold.
    pub fn intersection(&self, other: &LabelSet) -> LabelSet {
        let mut shared: Vec<(&str, &str)> = Vec::new();
        let (mut mine, mut theirs) = (self.iter().peekable(), other.iter().peekable());
        while let (Some(&(k, v)), Some(&(ok, ov))) = (mine.peek(), theirs.peek()) {
            match k.cmp(ok) {
                std::cmp::Ordering::Less => {
                    mine.next();
                }
                std::cmp::Ordering::Greater => {
                    theirs.next();
                }
                std::cmp::Ordering::Equal => {
                    if v == ov {
                        shared.push((k, v));
                    }
                    mine.next();
                    theirs.next();
                }
            }
        }
        LabelSet::from_sorted(&shared)
    }

    pub fn iter(&self) -> LabelIter<'_> {
        LabelIter {
            set: self,
            front: 0,
            back: self.ends.len(),
        }
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.iter().map(|(k, _)| k)
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }
}

/// The pairs of a set, in name order.
#[derive(Clone)]
pub struct LabelIter<'a> {
    set: &'a LabelSet,
    front: usize,
    back: usize,
}

impl<'a> Iterator for LabelIter<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<Self::Item> {
        (self.front < self.back).then(|| {
            self.front += 1;
            self.set.pair(self.front - 1)
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.back - self.front;
        (n, Some(n))
    }
}

impl DoubleEndedIterator for LabelIter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        (self.front < self.back).then(|| {
            self.back -= 1;
            self.set.pair(self.back)
        })
    }
}

impl ExactSizeIterator for LabelIter<'_> {}

impl<'a> IntoIterator for &'a LabelSet {
    type Item = (&'a str, &'a str);
    type IntoIter = LabelIter<'a>;
    fn into_iter(self) -> LabelIter<'a> {
        self.iter()
    }
}

impl fmt::Debug for LabelSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl From<BTreeMap<String, String>> for LabelSet {
    fn from(map: BTreeMap<String, String>) -> Self {
        // Already sorted and unique.
        let pairs: Vec<(String, String)> = map.into_iter().collect();
        LabelSet::from_sorted(&pairs)
    }
}

impl From<&LabelSet> for BTreeMap<String, String> {
    fn from(set: &LabelSet) -> Self {
        set.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }
}

impl FromIterator<(String, String)> for LabelSet {
    fn from_iter<I: IntoIterator<Item = (String, String)>>(pairs: I) -> Self {
        LabelSet::from_unsorted(pairs.into_iter().collect())
    }
}

impl<'a> FromIterator<(&'a str, &'a str)> for LabelSet {
    fn from_iter<I: IntoIterator<Item = (&'a str, &'a str)>>(pairs: I) -> Self {
        LabelSet::from_unsorted(pairs.into_iter().collect())
    }
}

impl Extend<(String, String)> for LabelSet {
    fn extend<I: IntoIterator<Item = (String, String)>>(&mut self, pairs: I) {
        let mut all: Vec<(String, String)> = self
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        all.extend(pairs);
        *self = LabelSet::from_unsorted(all);
    }
}

impl<const N: usize> From<[(String, String); N]> for LabelSet {
    fn from(pairs: [(String, String); N]) -> Self {
        pairs.into_iter().collect()
    }
}

impl std::ops::Index<&str> for LabelSet {
    type Output = str;
    fn index(&self, name: &str) -> &str {
        self.get(name).expect("no label of that name")
    }
}

impl Serialize for LabelSet {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.iter())
    }
}

impl<'de> Deserialize<'de> for LabelSet {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(SetVisitor)
    }
}

struct SetVisitor;

impl<'de> Visitor<'de> for SetVisitor {
    type Value = LabelSet;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map of strings to strings")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<LabelSet, A::Error> {
        let mut pairs: Vec<(Text<'de>, Text<'de>)> =
            Vec::with_capacity(map.size_hint().unwrap_or(8).min(64));
        while let Some(pair) = map.next_entry()? {
            pairs.push(pair);
        }
        Ok(LabelSet::from_unsorted(pairs))
    }
}

/// A string read from the input: borrowed when the input holds it as is (no escapes), else
/// owned. (serde's own `Cow<str>` always copies.)
struct Text<'de>(Cow<'de, str>);

impl AsRef<str> for Text<'_> {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for Text<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor;
        impl<'de> Visitor<'de> for TextVisitor {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: serde::de::Error>(self, v: &'de str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(v.to_string())))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(TextVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(pairs: &[(&str, &str)]) -> LabelSet {
        pairs.iter().copied().collect()
    }

    #[test]
    fn reads_like_a_sorted_map() {
        let s = set(&[("service", "api"), ("alertname", "Down"), ("region", "eu")]);
        assert_eq!(s.len(), 3);
        assert_eq!(s.get("service"), Some("api"));
        assert_eq!(s.get("alertname"), Some("Down"));
        assert_eq!(s.get("region"), Some("eu"));
        assert_eq!(s.get("zone"), None);
        assert_eq!(s.get(""), None);
        assert_eq!(
            s.keys().collect::<Vec<_>>(),
            ["alertname", "region", "service"]
        );
        assert_eq!(s.iter().next_back(), Some(("service", "api")));
        assert_eq!(&s["region"], "eu");
    }

    #[test]
    fn the_last_of_a_name_given_twice_counts_as_in_a_map() {
        let s = set(&[("a", "1"), ("b", "2"), ("a", "3")]);
        assert_eq!(s.len(), 2);
        assert_eq!(s.get("a"), Some("3"));
        let parsed: LabelSet = serde_json::from_str(r#"{"a":"1","b":"2","a":"3"}"#).unwrap();
        assert_eq!(parsed, s);
    }

    #[test]
    fn insert_and_extend() {
        let mut s = set(&[("b", "2")]);
        assert_eq!(s.insert("a".into(), "1".into()), None);
        assert_eq!(s.insert("c".into(), "3".into()), None);
        assert_eq!(s.insert("b".into(), "two".into()), Some("2".into()));
        assert_eq!(s, set(&[("a", "1"), ("b", "two"), ("c", "3")]));
        s.extend([("a".to_string(), "x".to_string())]);
        assert_eq!(s, set(&[("a", "x"), ("b", "two"), ("c", "3")]));
    }

    #[test]
    fn subsets_and_intersections() {
        let a = set(&[("region", "eu"), ("service", "api"), ("zone", "1")]);
        let b = set(&[
            ("alertname", "X"),
            ("region", "eu"),
            ("service", "web"),
            ("zone", "1"),
        ]);
        assert_eq!(a.intersection(&b), set(&[("region", "eu"), ("zone", "1")]));
        assert!(a.intersection(&b).is_subset_of(&a));
        assert!(a.intersection(&b).is_subset_of(&b));
        assert!(!a.is_subset_of(&b));
        assert!(a.is_subset_of(&a));
        assert!(LabelSet::new().is_subset_of(&a));
        assert!(!a.is_subset_of(&LabelSet::new()));
        assert!(set(&[("zone", "1")]).is_subset_of(&b));
        assert!(!set(&[("zone", "2")]).is_subset_of(&b));
        assert!(!set(&[("zzz", "1")]).is_subset_of(&b));
        assert_eq!(a.intersection(&LabelSet::new()), LabelSet::new());
    }

    #[test]
    fn empty_values_and_names_sharing_a_prefix() {
        let s = set(&[("a", ""), ("ab", "x"), ("", "empty name")]);
        assert_eq!(s.get("a"), Some(""));
        assert_eq!(s.get("ab"), Some("x"));
        assert_eq!(s.get(""), Some("empty name"));
        assert!(LabelSet::new().get("a").is_none());
    }

    #[test]
    fn serializes_as_the_map_would_and_reads_escapes() {
        let s = set(&[("quote", "say \"hi\""), ("uni", "é ✓")]);
        let json = serde_json::to_string(&s).unwrap();
        let map: BTreeMap<String, String> = (&s).into();
        assert_eq!(json, serde_json::to_string(&map).unwrap());
        let back: LabelSet = serde_json::from_str(&json).unwrap();
        assert_eq!(back, s);
        // From a reader (no borrowing possible) too.
        let back: LabelSet = serde_json::from_reader(json.as_bytes()).unwrap();
        assert_eq!(back, s);
        assert!(serde_json::from_str::<LabelSet>(r#"{"a":1}"#).is_err());
    }
}
