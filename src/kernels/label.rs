//! Connected-component labelling of binary masks (8-connected), shared by the PRO metric
//! and the defect regions of a scored image.

/// Labels the 8-connected components of `mask` (scipy.ndimage.label with a 3x3 structure).
/// Returns per-pixel labels (0 = background, 1..=n regions) and each region's pixel count
/// (index 0 unused).
pub fn label_components(mask: &[bool], width: usize, height: usize) -> (Vec<u32>, Vec<u64>) {
    let mut labels = vec![0u32; mask.len()];
    let mut sizes = vec![0u64];
    let mut stack = Vec::new();
    for start in 0..mask.len() {
        if !mask[start] || labels[start] != 0 {
            continue;
        }
        let id = sizes.len() as u32;
        let mut size = 0u64;
        labels[start] = id;
        stack.push(start);
        while let Some(p) = stack.pop() {
            size += 1;
            let (x, y) = (p % width, p / width);
            for ny in y.saturating_sub(1)..=(y + 1).min(height - 1) {
                for nx in x.saturating_sub(1)..=(x + 1).min(width - 1) {
                    let q = ny * width + nx;
                    if mask[q] && labels[q] == 0 {
                        labels[q] = id;
                        stack.push(q);
                    }
                }
            }
        }
        sizes.push(size);
    }
    (labels, sizes)
}
