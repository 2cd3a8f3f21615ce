//! An ordered, case-insensitive header map with Envoy's mutation rules.
//!
//! Envoy stores header names lower-cased and keeps insertion order; the
//! proxy-wasm header hostcalls map one-to-one onto the methods here. Values
//! are bytes because the guest may set any bytes; accessors for tests convert
//! them to text lossily.

/// The headers of one map (request headers, response trailers, ...).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderMap {
    entries: Vec<(String, Vec<u8>)>,
}

impl HeaderMap {
    /// Builds a map from text pairs, lower-casing names like Envoy's codec.
    pub fn from_pairs<K: AsRef<str>, V: AsRef<str>>(pairs: &[(K, V)]) -> Self {
        let mut map = Self::default();
        for (k, v) in pairs {
            map.add(k.as_ref().as_bytes(), v.as_ref().as_bytes());
        }
        map
    }

    /// Builds a map from raw pairs sent by the guest.
    pub fn from_raw(pairs: Vec<(Vec<u8>, Vec<u8>)>) -> Self {
        let mut map = Self::default();
        for (k, v) in pairs {
            map.add(&k, &v);
        }
        map
    }

    /// Number of entries (repeated names count once per value), which is the
    /// `num_headers` argument of the header callbacks.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when the map has no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// First value of `name`, if any (`get_header_map_value`).
    pub fn get(&self, name: &[u8]) -> Option<&[u8]> {
        let name = lower(name);
        self.entries
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_slice())
    }

    /// First value of `name` as text, for tests.
    pub fn get_str(&self, name: &str) -> Option<String> {
        self.get(name.as_bytes())
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }

    /// Appends a value, keeping existing ones (`add_header_map_value`).
    pub fn add(&mut self, name: &[u8], value: &[u8]) {
        self.entries.push((lower(name), value.to_vec()));
    }

    /// Sets the only value of `name` (`replace_header_map_value`): the first
    /// occurrence is overwritten in place and later ones are dropped, or the
    /// header is appended when absent.
    pub fn replace(&mut self, name: &[u8], value: &[u8]) {
        let name = lower(name);
        match self.entries.iter().position(|(k, _)| *k == name) {
            Some(first) => {
                self.entries[first].1 = value.to_vec();
                let mut index = 0;
                self.entries.retain(|(k, _)| {
                    let keep = index <= first || *k != name;
                    index += 1;
                    keep
                });
            }
            None => self.entries.push((name, value.to_vec())),
        }
    }

    /// Removes every value of `name` (`remove_header_map_value`).
    pub fn remove(&mut self, name: &[u8]) {
        let name = lower(name);
        self.entries.retain(|(k, _)| *k != name);
    }

    /// Raw entries in order, for the pairs encoding.
    pub fn raw_entries(&self) -> &[(String, Vec<u8>)] {
        &self.entries
    }

    /// Entries as text pairs, for tests and the replay output.
    pub fn to_pairs(&self) -> Vec<(String, String)> {
        self.entries
            .iter()
            .map(|(k, v)| (k.clone(), String::from_utf8_lossy(v).into_owned()))
            .collect()
    }

    /// Encodes the map in the proxy-wasm pairs layout.
    pub fn encode(&self) -> Vec<u8> {
        crate::pairs::encode(&self.entries)
    }
}

fn lower(name: &[u8]) -> String {
    String::from_utf8_lossy(name).to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_lower_cased() {
        let mut map = HeaderMap::from_pairs(&[("Content-Type", "a")]);
        assert_eq!(map.get(b"content-type"), Some(&b"a"[..]));
        assert_eq!(map.get(b"CONTENT-TYPE"), Some(&b"a"[..]));
        map.remove(b"Content-TYPE");
        assert!(map.is_empty());
    }

    #[test]
    fn replace_keeps_position_and_drops_duplicates() {
        let mut map = HeaderMap::from_pairs(&[("a", "1"), ("b", "2"), ("a", "3")]);
        map.replace(b"A", b"9");
        assert_eq!(
            map.to_pairs(),
            vec![("a".into(), "9".into()), ("b".into(), "2".into())]
        );
        map.replace(b"c", b"4");
        assert_eq!(map.len(), 3);
    }

    #[test]
    fn add_keeps_duplicates() {
        let mut map = HeaderMap::default();
        map.add(b"x", b"1");
        map.add(b"X", b"2");
        assert_eq!(map.len(), 2);
        assert_eq!(map.get_str("x").as_deref(), Some("1"));
    }
}
