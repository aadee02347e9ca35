//! The listing's names: sorted, in one allocation, searched by binary search (a cursor, a
//! name prefix).

/// Names, one allocation for all of them.
#[derive(Debug, Default)]
pub(super) struct Names {
    pub(super) text: String,
    pub(super) ends: Vec<u32>,
}

impl Names {
    pub(super) fn push(&mut self, name: &str) {
        self.text.push_str(name);
        self.ends
            .push(u32::try_from(self.text.len()).unwrap_or(u32::MAX));
    }

    pub(super) fn len(&self) -> usize {
        self.ends.len()
    }

    pub(super) fn get(&self, i: usize) -> &str {
        let start = match i.checked_sub(1) {
            Some(j) => self.ends.get(j).copied().unwrap_or(0),
            None => 0,
        };
        let end = self.ends.get(i).copied().unwrap_or(start);
        self.text
            .get(start as usize..end as usize)
            .unwrap_or_default()
    }

    /// How many names sort at or before `after` (the names are sorted).
    pub(super) fn position_after(&self, after: &str) -> usize {
        self.partition(|n| n <= after)
    }

    /// The first index whose name is not `before` (the names are sorted and `before` holds
    /// for a leading run of them).
    pub(super) fn partition(&self, before: impl Fn(&str) -> bool) -> usize {
        let (mut lo, mut hi) = (0, self.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if before(self.get(mid)) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }

    /// The range of the names that start with `prefix`: in sorted names they follow each
    /// other, after every smaller name and before every larger one that lacks the prefix.
    pub(super) fn prefix_range(&self, prefix: &str) -> (usize, usize) {
        let lo = self.partition(|n| n < prefix);
        let hi = self.partition(|n| n < prefix || n.starts_with(prefix));
        (lo, hi.max(lo))
    }

    pub(super) fn contains(&self, name: &str) -> bool {
        let i = self.position_after(name);
        i > 0 && self.get(i - 1) == name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_is_a_range_of_the_sorted_names() {
        let mut names = Names::default();
        let sorted = ["a", "u1", "u12", "u120", "u12z", "u13", "u2", "v"];
        for n in sorted {
            names.push(n);
        }
        let got = |p: &str| {
            let (lo, hi) = names.prefix_range(p);
            (lo..hi).map(|i| names.get(i)).collect::<Vec<_>>()
        };
        assert_eq!(got(""), sorted);
        assert_eq!(got("u12"), ["u12", "u120", "u12z"]);
        assert_eq!(got("u1"), ["u1", "u12", "u120", "u12z", "u13"]);
        assert_eq!(got("v"), ["v"]);
        assert!(got("u3").is_empty() && got("0").is_empty() && got("~").is_empty());
        assert!(got("u120x").is_empty());
    }
}
