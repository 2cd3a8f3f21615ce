//! A checked request: what to count, under which limit, in which window.
//! Everything a caller controls is bounded here, before Redis sees it.

use crate::key;
use crate::proto::{RateLimitRequest, Unit};
use crate::window::{self, Window};

/// Per-request bounds (the message size itself is bounded by the gRPC
/// decoder, see `Config::max_request_bytes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// Descriptors in one request (each is one Redis counter).
    pub max_descriptors: usize,
    /// Entries in one descriptor.
    pub max_entries: usize,
    /// Bytes of one counter's Redis key (domain and entries included).
    pub max_key_bytes: usize,
}

impl Default for Bounds {
    fn default() -> Self {
        Self {
            max_descriptors: 16,
            max_entries: 16,
            max_key_bytes: 1024,
        }
    }
}

/// A limit: hits allowed per window of `unit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// Hits allowed per window (0: every request is over limit).
    pub requests_per_unit: u32,
    /// The window length.
    pub unit: Unit,
}

impl std::str::FromStr for Limit {
    type Err = String;

    /// `N/second`, `N/minute`, `N/hour`, `N/day`, `N/month`, `N/year`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (count, unit) = text
            .split_once('/')
            .ok_or_else(|| format!("`{text}`: expected N/UNIT, e.g. 100/minute"))?;
        let requests_per_unit = count
            .trim()
            .parse()
            .map_err(|e| format!("`{count}`: {e}"))?;
        let unit = match unit.trim() {
            "second" | "s" => Unit::Second,
            "minute" | "m" => Unit::Minute,
            "hour" | "h" => Unit::Hour,
            "day" | "d" => Unit::Day,
            "month" => Unit::Month,
            "year" => Unit::Year,
            other => {
                return Err(format!(
                    "`{other}`: unit must be second, minute, hour, day, month or year"
                ))
            }
        };
        Ok(Self {
            requests_per_unit,
            unit,
        })
    }
}

/// What one descriptor asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// No override and no default limit: answered OK, nothing counted.
    Unlimited,
    /// Counted in `key` against `limit` in `window`.
    Counted {
        /// The Redis key.
        key: Vec<u8>,
        /// The limit that applies.
        limit: Limit,
        /// The current window of the limit's unit.
        window: Window,
    },
}

/// A checked request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// What each counter grows by (≥ 1).
    pub hits: u32,
    /// One per request descriptor, in order.
    pub items: Vec<Item>,
}

impl Plan {
    /// The counted items' keys and windows, in order.
    pub fn counters(&self) -> impl Iterator<Item = (&[u8], &Window)> {
        self.items.iter().filter_map(|item| match item {
            Item::Counted { key, window, .. } => Some((key.as_slice(), window)),
            Item::Unlimited => None,
        })
    }
}

/// Why a request was refused (answered `INVALID_ARGUMENT`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// `domain` empty.
    #[error("domain is empty")]
    NoDomain,
    /// No descriptor.
    #[error("no descriptors")]
    NoDescriptors,
    /// More descriptors than [`Bounds::max_descriptors`].
    #[error("{count} descriptors; at most {max}")]
    TooManyDescriptors {
        /// Sent.
        count: usize,
        /// Allowed.
        max: usize,
    },
    /// A descriptor without entries.
    #[error("descriptors[{index}]: no entries")]
    NoEntries {
        /// The descriptor.
        index: usize,
    },
    /// More entries than [`Bounds::max_entries`].
    #[error("descriptors[{index}]: {count} entries; at most {max}")]
    TooManyEntries {
        /// The descriptor.
        index: usize,
        /// Sent.
        count: usize,
        /// Allowed.
        max: usize,
    },
    /// An entry with an empty key or value (Envoy never sends one).
    #[error("descriptors[{index}].entries[{entry}]: empty key or value")]
    EmptyEntry {
        /// The descriptor.
        index: usize,
        /// The entry.
        entry: usize,
    },
    /// An override whose unit is not one the service knows.
    #[error("descriptors[{index}].limit.unit: {unit} is not a known unit")]
    UnknownUnit {
        /// The descriptor.
        index: usize,
        /// The unit sent.
        unit: i32,
    },
    /// The counter's key would be longer than [`Bounds::max_key_bytes`].
    #[error("descriptors[{index}]: key of {len} bytes; at most {max}")]
    KeyTooLong {
        /// The descriptor.
        index: usize,
        /// Its length.
        len: usize,
        /// Allowed.
        max: usize,
    },
}

/// Checks `request` against `bounds` and works out each descriptor's
/// counter at `now_ms`; a descriptor without an override gets `default`
/// (or is [`Item::Unlimited`] when there is none).
pub fn plan(
    request: &RateLimitRequest,
    bounds: &Bounds,
    default: Option<Limit>,
    now_ms: i64,
) -> Result<Plan, PlanError> {
    if request.domain.is_empty() {
        return Err(PlanError::NoDomain);
    }
    let count = request.descriptors.len();
    if count == 0 {
        return Err(PlanError::NoDescriptors);
    }
    if count > bounds.max_descriptors {
        return Err(PlanError::TooManyDescriptors {
            count,
            max: bounds.max_descriptors,
        });
    }
    let mut items = Vec::with_capacity(count);
    for (index, descriptor) in request.descriptors.iter().enumerate() {
        let entries = &descriptor.entries;
        if entries.is_empty() {
            return Err(PlanError::NoEntries { index });
        }
        if entries.len() > bounds.max_entries {
            return Err(PlanError::TooManyEntries {
                index,
                count: entries.len(),
                max: bounds.max_entries,
            });
        }
        if let Some(entry) = entries
            .iter()
            .position(|e| e.key.is_empty() || e.value.is_empty())
        {
            return Err(PlanError::EmptyEntry { index, entry });
        }
        let limit = match &descriptor.limit {
            Some(over) => {
                let unit = Unit::try_from(over.unit)
                    .ok()
                    .filter(|u| *u != Unit::Unknown)
                    .ok_or(PlanError::UnknownUnit {
                        index,
                        unit: over.unit,
                    })?;
                Some(Limit {
                    requests_per_unit: over.requests_per_unit,
                    unit,
                })
            }
            None => default,
        };
        let Some(limit) = limit else {
            items.push(Item::Unlimited);
            continue;
        };
        // The unit was checked above, so the window always exists.
        let window = window::window(limit.unit, now_ms).ok_or(PlanError::UnknownUnit {
            index,
            unit: limit.unit as i32,
        })?;
        let pairs = || entries.iter().map(|e| (e.key.as_str(), e.value.as_str()));
        let len = key::counter_key_len(&request.domain, pairs(), window.start);
        if len > bounds.max_key_bytes {
            return Err(PlanError::KeyTooLong {
                index,
                len,
                max: bounds.max_key_bytes,
            });
        }
        items.push(Item::Counted {
            key: key::counter_key(&request.domain, pairs(), limit.unit, window.start),
            limit,
            window,
        });
    }
    Ok(Plan {
        hits: request.hits_addend.max(1),
        items,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{Entry, RateLimitDescriptor, RateLimitOverride};

    fn descriptor(pairs: &[(&str, &str)], limit: Option<(u32, i32)>) -> RateLimitDescriptor {
        RateLimitDescriptor {
            entries: pairs
                .iter()
                .map(|(k, v)| Entry {
                    key: (*k).into(),
                    value: (*v).into(),
                })
                .collect(),
            limit: limit.map(|(requests_per_unit, unit)| RateLimitOverride {
                requests_per_unit,
                unit,
            }),
        }
    }

    fn request(descriptors: Vec<RateLimitDescriptor>, hits: u32) -> RateLimitRequest {
        RateLimitRequest {
            domain: "mcp".into(),
            descriptors,
            hits_addend: hits,
        }
    }

    #[test]
    fn hits_zero_means_one_and_default_applies() {
        let default = Some(Limit {
            requests_per_unit: 5,
            unit: Unit::Second,
        });
        let r = request(
            vec![
                descriptor(&[("a", "b")], Some((10, 2))),
                descriptor(&[("a", "c")], None),
            ],
            0,
        );
        let p = plan(&r, &Bounds::default(), default, 61_500).unwrap();
        assert_eq!(p.hits, 1);
        assert!(
            matches!(&p.items[0], Item::Counted { limit, window, .. } if limit.requests_per_unit == 10 && window.start == 60)
        );
        assert!(
            matches!(&p.items[1], Item::Counted { limit, window, .. } if limit.requests_per_unit == 5 && window.start == 61)
        );
        let p = plan(&r, &Bounds::default(), None, 61_500).unwrap();
        assert_eq!(p.items[1], Item::Unlimited);
        assert_eq!(p.counters().count(), 1);
    }

    #[test]
    fn refusals() {
        let b = Bounds {
            max_descriptors: 2,
            max_entries: 2,
            max_key_bytes: 64,
        };
        let ok = || descriptor(&[("a", "b")], Some((1, 1)));
        let mut r = request(vec![ok()], 1);
        r.domain.clear();
        assert_eq!(plan(&r, &b, None, 0), Err(PlanError::NoDomain));
        assert_eq!(
            plan(&request(vec![], 1), &b, None, 0),
            Err(PlanError::NoDescriptors)
        );
        assert!(matches!(
            plan(&request(vec![ok(), ok(), ok()], 1), &b, None, 0),
            Err(PlanError::TooManyDescriptors { count: 3, max: 2 })
        ));
        assert_eq!(
            plan(&request(vec![ok(), descriptor(&[], None)], 1), &b, None, 0),
            Err(PlanError::NoEntries { index: 1 })
        );
        assert!(matches!(
            plan(
                &request(vec![descriptor(&[("a", "b"); 3], None)], 1),
                &b,
                None,
                0
            ),
            Err(PlanError::TooManyEntries { count: 3, .. })
        ));
        assert_eq!(
            plan(
                &request(vec![descriptor(&[("a", "b"), ("c", "")], None)], 1),
                &b,
                None,
                0
            ),
            Err(PlanError::EmptyEntry { index: 0, entry: 1 })
        );
        for unit in [0, 7, -1, i32::MAX] {
            assert_eq!(
                plan(
                    &request(vec![descriptor(&[("a", "b")], Some((1, unit)))], 1),
                    &b,
                    None,
                    0
                ),
                Err(PlanError::UnknownUnit { index: 0, unit })
            );
        }
        let long = "x".repeat(64);
        assert!(matches!(
            plan(
                &request(vec![descriptor(&[("a", &long)], Some((1, 1)))], 1),
                &b,
                None,
                0
            ),
            Err(PlanError::KeyTooLong { index: 0, .. })
        ));
    }

    #[test]
    fn limit_parses() {
        assert_eq!(
            "100/minute".parse(),
            Ok(Limit {
                requests_per_unit: 100,
                unit: Unit::Minute
            })
        );
        assert!("100".parse::<Limit>().is_err());
        assert!("x/second".parse::<Limit>().is_err());
        assert!("1/week".parse::<Limit>().is_err());
        assert!("-1/second".parse::<Limit>().is_err());
    }
}
