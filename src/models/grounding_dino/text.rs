//! Text-side bookkeeping of Grounding DINO: the phrase-blocked self-attention mask and the
//! per-phrase position ids (generate_masks_with_special_tokens_and_transfer_map).

/// [CLS], [SEP], "." and "?" in BERT's uncased vocabulary: the phrase delimiters.
pub const SPECIAL_TOKENS: [i64; 4] = [101, 102, 1012, 1029];

/// For one sequence: `attend[i·L + j]` (token i may attend to j: same phrase, or i == j)
/// and the position id of each token within its phrase.
pub fn phrase_masks(ids: &[i64]) -> (Vec<bool>, Vec<i64>) {
    let l = ids.len();
    let special: Vec<bool> = ids.iter().map(|t| SPECIAL_TOKENS.contains(t)).collect();
    // prev[i]: the last delimiter strictly before i (−1 if none).
    let mut prev = vec![-1i64; l];
    let mut last = -1i64;
    for i in 0..l {
        prev[i] = last;
        if special[i] {
            last = i as i64;
        }
    }
    // next[i]: the first delimiter at or after i (L if none).
    let mut next = vec![l as i64; l];
    let mut nxt = l as i64;
    for i in (0..l).rev() {
        if special[i] {
            nxt = i as i64;
        }
        next[i] = nxt;
    }
    let valid: Vec<bool> = next
        .iter()
        .map(|&n| n != 0 && n != l as i64 - 1 && n != l as i64)
        .collect();
    let mut attend = vec![false; l * l];
    for i in 0..l {
        for j in 0..l {
            attend[i * l + j] = i == j || (next[i] == next[j] && valid[j]);
        }
    }
    let pos = (0..l)
        .map(|i| {
            if valid[i] {
                (i as i64 - prev[i] - 1).max(0)
            } else {
                0
            }
        })
        .collect();
    (attend, pos)
}
