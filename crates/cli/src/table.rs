//! Tables as kubectl and runc print them: columns padded to their widest cell, three
//! spaces apart, no trailing blanks.

/// Renders `header` and `rows` (each as long as `header`).
pub fn render<const N: usize>(header: &[&str; N], rows: &[[String; N]]) -> String {
    let header: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    let rows: Vec<Vec<String>> = rows.iter().map(|r| r.to_vec()).collect();
    render_rows(&header, &rows)
}

/// [`render`] for a number of columns known only at run time (kubectl's `-A`, `-o wide`).
/// A row shorter than the header leaves its last cells empty.
pub fn render_rows(header: &[String], rows: &[Vec<String>]) -> String {
    let n = header.len();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(header).chain(rows.iter().map(Vec::as_slice)) {
        let mut line = String::new();
        for (i, w) in widths.iter().enumerate() {
            let cell = row.get(i).map(String::as_str).unwrap_or("");
            if i > 0 {
                line.push_str("   ");
            }
            if i + 1 == n {
                line.push_str(cell);
            } else {
                line.push_str(cell);
                let pad = w.saturating_sub(cell.chars().count());
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_line_up_without_trailing_blanks() {
        let t = render(
            &["A", "BB"],
            &[["xyz".into(), "1".into()], ["".into(), "".into()]],
        );
        assert_eq!(t, "A     BB\nxyz   1\n\n");
    }
}
