//! Tables as kubectl and runc print them: columns padded to their widest cell, three
//! spaces apart, no trailing blanks.

/// Renders `header` and `rows` (each as long as `header`).
pub fn render<const N: usize>(header: &[&str; N], rows: &[[String; N]]) -> String {
    let mut widths = header.map(str::len);
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let header: [String; N] = header.map(String::from);
    let mut out = String::new();
    for row in std::iter::once(&header).chain(rows.iter()) {
        let mut line = String::new();
        for (i, (cell, w)) in row.iter().zip(widths).enumerate() {
            if i > 0 {
                line.push_str("   ");
            }
            if i + 1 == N {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}"));
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
