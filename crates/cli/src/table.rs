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
    let mut widths = Widths::default();
    widths.fit(header);
    for row in rows {
        widths.fit(row);
    }
    std::iter::once(header)
        .chain(rows.iter().map(Vec::as_slice))
        .map(|row| widths.line(row))
        .collect()
}

/// Column widths that only grow, for a table printed a few rows at a time (`get
/// --watch`): later rows line up with the header as long as their cells fit, and widen
/// the columns for the rows after them when they do not.
#[derive(Debug, Default, Clone)]
pub struct Widths(Vec<usize>);

impl Widths {
    /// Widens the columns to hold `row`.
    pub fn fit(&mut self, row: &[String]) {
        if self.0.len() < row.len() {
            self.0.resize(row.len(), 0);
        }
        for (w, cell) in self.0.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }

    /// `row` as one line: cells padded to their column, three spaces apart, no trailing
    /// blanks, a newline at the end.
    pub fn line(&self, row: &[String]) -> String {
        let n = self.0.len().max(row.len());
        let mut line = String::new();
        for i in 0..n {
            let cell = row.get(i).map(String::as_str).unwrap_or("");
            if i > 0 {
                line.push_str("   ");
            }
            line.push_str(cell);
            if i + 1 < n {
                let w = self.0.get(i).copied().unwrap_or(0);
                let pad = w.saturating_sub(cell.chars().count());
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        let mut out = line.trim_end().to_string();
        out.push('\n');
        out
    }
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

    #[test]
    fn widths_only_grow_as_rows_arrive() {
        let mut widths = Widths::default();
        let header = ["NAME".to_string(), "AGE".to_string()];
        widths.fit(&header);
        assert_eq!(widths.line(&header), "NAME   AGE\n");
        let short = ["a".to_string(), "1s".to_string()];
        widths.fit(&short);
        assert_eq!(widths.line(&short), "a      1s\n");
        let long = ["a-much-longer-name".to_string(), "2s".to_string()];
        widths.fit(&long);
        assert_eq!(widths.line(&long), "a-much-longer-name   2s\n");
        assert_eq!(widths.line(&short), "a                    1s\n");
    }
}
