//! A shortest edit script between two line sequences (Myers' O(ND)
//! algorithm in linear space), reported as GNU diff's `changed` flags: for
//! each line of either side, whether it is not part of the common
//! subsequence.

use std::collections::HashMap;

/// Per-line change flags of `a` and `b`.
pub(crate) struct Changes {
    pub a: Vec<bool>,
    pub b: Vec<bool>,
}

pub(crate) fn diff_lines<'a>(a: &[&'a [u8]], b: &[&'a [u8]]) -> Changes {
    // Lines become small integers so the inner loop compares words.
    let mut ids: HashMap<&'a [u8], u32> = HashMap::new();
    let mut intern = |l: &'a [u8]| -> u32 {
        let next = u32::try_from(ids.len()).unwrap_or(u32::MAX);
        *ids.entry(l).or_insert(next)
    };
    let a: Vec<u32> = a.iter().map(|l| intern(l)).collect();
    let b: Vec<u32> = b.iter().map(|l| intern(l)).collect();
    let mut ch = Changes {
        a: vec![false; a.len()],
        b: vec![false; b.len()],
    };
    // As GNU diff: trim the identical ends, mark lines that cannot match
    // (or would only confuse the search) as changed outright, and search
    // for the shortest script among the remaining lines.
    let pre = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let suf = a[pre..]
        .iter()
        .rev()
        .zip(b[pre..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let (ma, mb) = (&a[pre..a.len() - suf], &b[pre..b.len() - suf]);
    let (da, db) = (discards(ma, &b, a.len()), discards(mb, &a, b.len()));
    let kept = |m: &[u32], d: &[bool], changed: &mut [bool]| -> (Vec<u32>, Vec<usize>) {
        let mut seq = Vec::new();
        let mut real = Vec::new();
        for (i, (&v, &gone)) in m.iter().zip(d).enumerate() {
            if gone {
                if let Some(c) = changed.get_mut(pre + i) {
                    *c = true;
                }
            } else {
                seq.push(v);
                real.push(pre + i);
            }
        }
        (seq, real)
    };
    let (xa, ra) = kept(ma, &da, &mut ch.a);
    let (xb, rb) = kept(mb, &db, &mut ch.b);
    let mut inner = Changes {
        a: vec![false; xa.len()],
        b: vec![false; xb.len()],
    };
    let size = 2 * (xa.len() + xb.len()) + 4;
    let mut vf = vec![0isize; size];
    let mut vb = vec![0isize; size];
    compare(&xa, &xb, 0, 0, &mut inner, &mut vf, &mut vb);
    for (flags, real, out) in [(&inner.a, &ra, &mut ch.a), (&inner.b, &rb, &mut ch.b)] {
        for (&f, &r) in flags.iter().zip(real.iter()) {
            if f {
                if let Some(c) = out.get_mut(r) {
                    *c = true;
                }
            }
        }
    }
    let other = ch.b.clone();
    shift_boundaries(&a, &mut ch.a, &other);
    let other = ch.a.clone();
    shift_boundaries(&b, &mut ch.b, &other);
    ch
}

/// GNU diff's `discard_confusing_lines`: a line with no equal in the
/// other file is certainly changed; a line with very many equals is
/// discarded too when it sits inside a run of such lines, because it
/// would only send the search after spurious matches.
fn discards(f: &[u32], other: &[u32], file_len: usize) -> Vec<bool> {
    let mut counts: HashMap<u32, usize> = HashMap::new();
    for &v in other {
        *counts.entry(v).or_insert(0) += 1;
    }
    let end = f.len();
    let mut many = 5usize;
    let mut tem = file_len / 64;
    loop {
        tem >>= 2;
        if tem == 0 {
            break;
        }
        many = many.saturating_mul(2);
    }
    // 0 keep, 1 discard, 2 discard provisionally.
    let mut d: Vec<u8> = f
        .iter()
        .map(|v| match counts.get(v).copied().unwrap_or(0) {
            0 => 1,
            n if n > many => 2,
            _ => 0,
        })
        .collect();
    let mut i = 0usize;
    while i < end {
        if d[i] == 2 {
            d[i] = 0;
        } else if d[i] != 0 {
            let mut j = i;
            let mut provisional = 0usize;
            while j < end && d[j] != 0 {
                if d[j] == 2 {
                    provisional += 1;
                }
                j += 1;
            }
            while j > i && d[j - 1] == 2 {
                j -= 1;
                d[j] = 0;
                provisional -= 1;
            }
            let length = j - i;
            if provisional * 4 > length {
                for x in &mut d[i..j] {
                    if *x == 2 {
                        *x = 0;
                    }
                }
            } else {
                let mut minimum = 1usize;
                let mut tem = length >> 2;
                loop {
                    tem >>= 2;
                    if tem == 0 {
                        break;
                    }
                    minimum <<= 1;
                }
                minimum += 1;
                // Cancel every subrun of `minimum` or more provisionals.
                let mut k = 0usize;
                let mut consec = 0usize;
                while k < length {
                    if d[i + k] != 2 {
                        consec = 0;
                    } else {
                        consec += 1;
                        if consec == minimum {
                            // Back up to the subrun's start to cancel it all.
                            k = k + 1 - consec;
                            d[i + k] = 0;
                        } else if consec > minimum {
                            d[i + k] = 0;
                        }
                    }
                    k += 1;
                }
                // From each end, cancel provisionals until three firm
                // discards in a row or a firm one at least 8 lines in.
                let mut consec = 0;
                for k in 0..length {
                    let x = &mut d[i + k];
                    if k >= 8 && *x == 1 {
                        break;
                    }
                    match *x {
                        2 => {
                            consec = 0;
                            *x = 0;
                        }
                        0 => consec = 0,
                        _ => consec += 1,
                    }
                    if consec == 3 {
                        break;
                    }
                }
                i += length - 1;
                let mut consec = 0;
                for k in 0..length {
                    let x = &mut d[i - k];
                    if k >= 8 && *x == 1 {
                        break;
                    }
                    match *x {
                        2 => {
                            consec = 0;
                            *x = 0;
                        }
                        0 => consec = 0,
                        _ => consec += 1,
                    }
                    if consec == 3 {
                        break;
                    }
                }
            }
        }
        i += 1;
    }
    d.into_iter().map(|x| x != 0).collect()
}

fn compare(
    a: &[u32],
    b: &[u32],
    a_off: usize,
    b_off: usize,
    ch: &mut Changes,
    vf: &mut [isize],
    vb: &mut [isize],
) {
    let prefix = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    let (a, b) = (&a[prefix..], &b[prefix..]);
    let (a_off, b_off) = (a_off + prefix, b_off + prefix);
    let suffix = a
        .iter()
        .rev()
        .zip(b.iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let (a, b) = (&a[..a.len() - suffix], &b[..b.len() - suffix]);
    if a.is_empty() {
        for f in ch.b.iter_mut().skip(b_off).take(b.len()) {
            *f = true;
        }
        return;
    }
    if b.is_empty() {
        for f in ch.a.iter_mut().skip(a_off).take(a.len()) {
            *f = true;
        }
        return;
    }
    let (x, y) = middle_snake(a, b, vf, vb);
    compare(&a[..x], &b[..y], a_off, b_off, ch, vf, vb);
    compare(&a[x..], &b[y..], a_off + x, b_off + y, ch, vf, vb);
}

/// A point `(x, y)` that some shortest edit script passes through,
/// strictly inside the box so that the recursion always shrinks: where the
/// forward and backward searches for furthest-reaching paths meet. The
/// search explores diagonals from the highest down and keeps to the box,
/// as GNU diff does, so that among several shortest scripts it tends to
/// pick the same one. `a` and `b` are non-empty and differ at both ends.
fn middle_snake(a: &[u32], b: &[u32], fd: &mut [isize], bd: &mut [isize]) -> (usize, usize) {
    let n = a.len() as isize;
    let m = b.len() as isize;
    let (dmin, dmax) = (-m, n);
    let delta = n - m;
    let odd = delta % 2 != 0;
    // Diagonal k = x - y lives at index k + m + 1, leaving room for the
    // sentinels one beyond each end.
    let at = |k: isize| (k + m + 1) as usize;
    let (mut fmin, mut fmax, mut bmin, mut bmax) = (0, 0, delta, delta);
    fd[at(0)] = 0;
    bd[at(delta)] = n;
    loop {
        if fmin > dmin {
            fmin -= 1;
            fd[at(fmin - 1)] = -1;
        } else {
            fmin += 1;
        }
        if fmax < dmax {
            fmax += 1;
            fd[at(fmax + 1)] = -1;
        } else {
            fmax -= 1;
        }
        let mut k = fmax;
        while k >= fmin {
            let (lo, hi) = (fd[at(k - 1)], fd[at(k + 1)]);
            let mut x = if lo < hi { hi } else { lo + 1 };
            let mut y = x - k;
            while x < n && y < m && a[x as usize] == b[y as usize] {
                x += 1;
                y += 1;
            }
            fd[at(k)] = x;
            if odd && bmin <= k && k <= bmax && bd[at(k)] <= x {
                return (x as usize, y as usize);
            }
            k -= 2;
        }
        if bmin > dmin {
            bmin -= 1;
            bd[at(bmin - 1)] = isize::MAX;
        } else {
            bmin += 1;
        }
        if bmax < dmax {
            bmax += 1;
            bd[at(bmax + 1)] = isize::MAX;
        } else {
            bmax -= 1;
        }
        let mut k = bmax;
        while k >= bmin {
            let (lo, hi) = (bd[at(k - 1)], bd[at(k + 1)]);
            let mut x = if lo < hi { lo } else { hi - 1 };
            let mut y = x - k;
            while x > 0 && y > 0 && a[(x - 1) as usize] == b[(y - 1) as usize] {
                x -= 1;
                y -= 1;
            }
            bd[at(k)] = x;
            if !odd && fmin <= k && k <= fmax && x <= fd[at(k)] {
                return (x as usize, y as usize);
            }
            k -= 2;
        }
    }
}

/// Slides runs of changed lines over equal neighbours the way GNU diff
/// does after computing the script: first up, then down as far as
/// possible (merging with neighbouring runs), then back up until the run
/// ends next to a change in the other file. Which of several equal lines
/// is "the change" is arbitrary; choosing as GNU does makes the hunks
/// byte-equal to `diff -u` output in most such cases (at least 90% of the
/// tie-heavy cases `tests/it/diff_gnu_agreement.rs` generates).
fn shift_boundaries(equivs: &[u32], changed: &mut [bool], other: &[bool]) {
    let n = changed.len() as isize;
    // Out-of-range positions read as unchanged, like GNU's sentinels.
    let c = |changed: &[bool], k: isize| k >= 0 && k < n && changed[k as usize];
    let o = |k: isize| k >= 0 && (k as usize) < other.len() && other[k as usize];
    let eq = |x: isize, y: isize| equivs[x as usize] == equivs[y as usize];
    let (mut i, mut j) = (0isize, 0isize);
    loop {
        while i < n && !c(changed, i) {
            loop {
                let t = o(j);
                j += 1;
                if !t {
                    break;
                }
            }
            i += 1;
        }
        if i == n {
            break;
        }
        let mut start = i;
        i += 1;
        while c(changed, i) {
            i += 1;
        }
        while o(j) {
            j += 1;
        }
        let mut corresponding;
        loop {
            let runlength = i - start;
            while start > 0 && eq(start - 1, i - 1) {
                start -= 1;
                changed[start as usize] = true;
                i -= 1;
                changed[i as usize] = false;
                while c(changed, start - 1) {
                    start -= 1;
                }
                loop {
                    j -= 1;
                    if !o(j) {
                        break;
                    }
                }
            }
            corresponding = if o(j - 1) { i } else { n };
            while i != n && eq(start, i) {
                changed[start as usize] = false;
                start += 1;
                changed[i as usize] = true;
                i += 1;
                while c(changed, i) {
                    i += 1;
                }
                loop {
                    j += 1;
                    if !o(j) {
                        break;
                    }
                    corresponding = i;
                }
            }
            if runlength == i - start {
                break;
            }
        }
        while corresponding < i {
            start -= 1;
            changed[start as usize] = true;
            i -= 1;
            changed[i as usize] = false;
            loop {
                j -= 1;
                if !o(j) {
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(s: &str) -> Vec<&[u8]> {
        s.as_bytes().split_inclusive(|&b| b == b'\n').collect()
    }

    fn lcs_len(a: &[&[u8]], b: &[&[u8]]) -> usize {
        let mut t = vec![vec![0usize; b.len() + 1]; a.len() + 1];
        for i in (0..a.len()).rev() {
            for j in (0..b.len()).rev() {
                t[i][j] = if a[i] == b[j] {
                    t[i + 1][j + 1] + 1
                } else {
                    t[i + 1][j].max(t[i][j + 1])
                };
            }
        }
        t[0][0]
    }

    #[test]
    fn minimal_and_consistent() {
        let cases = [
            ("a\nb\nc\n", "a\nc\n"),
            ("", "x\n"),
            ("a\nb\nc\na\nb\nb\na\n", "c\nb\na\nb\na\nc\n"),
            ("x\ny\nx\ny\n", "y\nx\ny\nx\n"),
            ("1\n2\n3\n", "1\n2\n3"),
        ];
        for (a, b) in cases {
            let (la, lb) = (lines(a), lines(b));
            let ch = diff_lines(&la, &lb);
            let kept_a: Vec<_> = la
                .iter()
                .zip(&ch.a)
                .filter(|(_, c)| !**c)
                .map(|(l, _)| *l)
                .collect();
            let kept_b: Vec<_> = lb
                .iter()
                .zip(&ch.b)
                .filter(|(_, c)| !**c)
                .map(|(l, _)| *l)
                .collect();
            assert_eq!(kept_a, kept_b, "{a:?} {b:?}");
            assert_eq!(kept_a.len(), lcs_len(&la, &lb), "{a:?} {b:?}");
        }
    }
}
