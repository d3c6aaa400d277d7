//! The heartbeat rows of a binary log rows event, read straight from the event's bytes.
//!
//! mysql_common's generic row decoder builds a column description (schema, table and
//! column names copied) and a value for every column of every row: at a hundred
//! replicas and 10 ms beats that was the largest share of the stream's CPU, mostly
//! allocation. The heartbeat table has a few integer and string columns, so this
//! reads just those types and says `None` for anything else (another column type, a
//! compressed or partial event), where the caller goes the generic way.
//!
//! Layout (MySQL's and MariaDB's row events, `WRITE_ROWS` and `UPDATE_ROWS`, v1 and
//! v2): the post-header (table id, flags, and for v2 an extra-data block), the column
//! count, one bitmap of the columns each image holds (two for an update: before and
//! after), then the rows, each image a null bitmap over its columns and the values of
//! those not null.

/// What the table map says of one column: its type code and its metadata bytes.
pub type ColumnSpec<'a> = (u8, &'a [u8]);

/// Event type codes of the events read here.
const WRITE_ROWS_V1: u8 = 23;
const UPDATE_ROWS_V1: u8 = 24;
const WRITE_ROWS_V2: u8 = 30;
const UPDATE_ROWS_V2: u8 = 31;

/// Column type codes read here.
const TYPE_TINY: u8 = 1;
const TYPE_SHORT: u8 = 2;
const TYPE_LONG: u8 = 3;
const TYPE_LONGLONG: u8 = 8;
const TYPE_INT24: u8 = 9;
const TYPE_VARCHAR: u8 = 15;
const TYPE_VAR_STRING: u8 = 253;

/// The newest beat of heartbeat row `row` in a rows event of type `kind` whose data
/// (after the common header, without the checksum) is `data`; `post_header_len` is
/// what the format description gives the type, `columns` the table map's columns.
/// `Some(None)`: read, and no row of `row` in it (or the event is not an insert or an
/// update); `None`: not readable here.
pub fn newest_beat(
    kind: u8,
    data: &[u8],
    post_header_len: usize,
    columns: &[ColumnSpec<'_>],
    row: &[u8],
) -> Option<Option<(u64, i64)>> {
    let (update, v2) = match kind {
        WRITE_ROWS_V1 => (false, false),
        UPDATE_ROWS_V1 => (true, false),
        WRITE_ROWS_V2 => (false, true),
        UPDATE_ROWS_V2 => (true, true),
        _ => return Some(None),
    };
    let mut at = Reader { data, at: 0 };
    at.skip(post_header_len)?;
    if v2 {
        // The v2 post-header is 10 bytes, the last two the extra data's length
        // (counting themselves), and the extra data follows.
        let extra_at = post_header_len.checked_sub(2)?;
        let extra = u16::from_le_bytes(data.get(extra_at..post_header_len)?.try_into().ok()?);
        at.skip(usize::from(extra).checked_sub(2)?)?;
    }
    let count = usize::try_from(at.lenenc()?).ok()?;
    if count != columns.len() {
        return None;
    }
    let bitmap_len = count.div_ceil(8);
    let before = at.take(bitmap_len)?;
    let after = if update { at.take(bitmap_len)? } else { before };
    let mut newest: Option<(u64, i64)> = None;
    while at.at < data.len() {
        if update {
            at.image(before, columns)?;
        }
        let values = at.image(after, columns)?;
        let (Some(Value::Bytes(name)), Some(Value::Int(seq)), Some(Value::Int(t_send_us))) =
            (values[0], values[1], values[2])
        else {
            continue;
        };
        if name != row {
            continue;
        }
        let t_send_us = t_send_us as i64;
        if newest.is_none_or(|(s, _)| seq > s) {
            newest = Some((seq, t_send_us));
        }
    }
    Some(newest)
}

/// The table id a rows event's post-header (`post_header_len` bytes) begins with.
pub fn table_id(data: &[u8], post_header_len: usize) -> Option<u64> {
    // Six bytes, or four in the 6-byte post-header of servers before MySQL 5.1.
    let width = if post_header_len == 6 { 4 } else { 6 };
    let mut bytes = [0u8; 8];
    bytes[..width].copy_from_slice(data.get(..width)?);
    Some(u64::from_le_bytes(bytes))
}

/// A value of one of the first three columns; the rest are read past.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Value<'a> {
    Bytes(&'a [u8]),
    /// An integer's bits, as the column stores them (signed or not).
    Int(u64),
}

struct Reader<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let bytes = self.data.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(bytes)
    }

    fn skip(&mut self, n: usize) -> Option<()> {
        self.take(n).map(|_| ())
    }

    /// A length-encoded integer.
    fn lenenc(&mut self) -> Option<u64> {
        let mut rest = self.data.get(self.at..)?;
        let value = crate::probe::stamped::lenenc(&mut rest)?;
        self.at = self.data.len() - rest.len();
        Some(value)
    }

    /// One row image holding the columns set in `present`: the values of the first
    /// three columns (None when absent or null).
    fn image(
        &mut self,
        present: &[u8],
        columns: &[ColumnSpec<'_>],
    ) -> Option<[Option<Value<'a>>; 3]> {
        let held = present
            .iter()
            .map(|b| b.count_ones() as usize)
            .sum::<usize>();
        let nulls = self.take(held.div_ceil(8))?;
        let mut values = [None; 3];
        let mut nth = 0;
        for (i, &(kind, meta)) in columns.iter().enumerate() {
            if present[i / 8] & (1 << (i % 8)) == 0 {
                continue;
            }
            let null = nulls[nth / 8] & (1 << (nth % 8)) != 0;
            nth += 1;
            if null {
                continue;
            }
            let value = self.value(kind, meta)?;
            if let Some(slot) = values.get_mut(i) {
                *slot = Some(value);
            }
        }
        Some(values)
    }

    /// One value of a column of type `kind` with metadata `meta`.
    fn value(&mut self, kind: u8, meta: &[u8]) -> Option<Value<'a>> {
        let width = match kind {
            TYPE_TINY => 1,
            TYPE_SHORT => 2,
            TYPE_INT24 => 3,
            TYPE_LONG => 4,
            TYPE_LONGLONG => 8,
            TYPE_VARCHAR | TYPE_VAR_STRING => {
                let max = u16::from_le_bytes(meta.get(..2)?.try_into().ok()?);
                let len = if max > 255 {
                    usize::from(u16::from_le_bytes(self.take(2)?.try_into().ok()?))
                } else {
                    usize::from(*self.take(1)?.first()?)
                };
                return self.take(len).map(Value::Bytes);
            }
            _ => return None,
        };
        let mut bytes = [0u8; 8];
        bytes[..width].copy_from_slice(self.take(width)?);
        Some(Value::Int(u64::from_le_bytes(bytes)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The heartbeat table: cluster VARCHAR(64) utf8mb4 (256 bytes at most: a two-byte
    /// length), seq BIGINT UNSIGNED, t_send_us BIGINT, server_id INT UNSIGNED.
    const COLUMNS: [ColumnSpec<'static>; 4] = [
        (TYPE_VARCHAR, &[0x00, 0x01]),
        (TYPE_LONGLONG, &[]),
        (TYPE_LONGLONG, &[]),
        (TYPE_LONG, &[]),
    ];

    fn image(out: &mut Vec<u8>, name: &[u8], seq: u64, t_send_us: i64) {
        out.push(0); // no nulls
        out.extend_from_slice(&(name.len() as u16).to_le_bytes());
        out.extend_from_slice(name);
        out.extend_from_slice(&seq.to_le_bytes());
        out.extend_from_slice(&t_send_us.to_le_bytes());
        out.extend_from_slice(&7u32.to_le_bytes());
    }

    /// A row's cluster, seq and send time.
    type Row<'a> = (&'a [u8], u64, i64);

    /// An update event (v1: an 8-byte post-header) of `rows`, each (before, after).
    fn update(rows: &[(Row<'_>, Row<'_>)]) -> Vec<u8> {
        let mut out = vec![0x2a, 0, 0, 0, 0, 0, 0x01, 0];
        out.push(4); // columns
        out.push(0x0f); // before: all four
        out.push(0x0f); // after: all four
        for &(b, a) in rows {
            image(&mut out, b.0, b.1, b.2);
            image(&mut out, a.0, a.1, a.2);
        }
        out
    }

    #[test]
    fn an_update_gives_the_after_image_of_the_row_asked_for() {
        let data = update(&[
            ((b"other", 1, 10), (b"other", 90, 900)),
            ((b"lab", 4, 40), (b"lab", 5, -50)),
        ]);
        assert_eq!(
            newest_beat(UPDATE_ROWS_V1, &data, 8, &COLUMNS, b"lab"),
            Some(Some((5, -50)))
        );
        assert_eq!(
            newest_beat(UPDATE_ROWS_V1, &data, 8, &COLUMNS, b"none"),
            Some(None)
        );
    }

    #[test]
    fn an_insert_has_one_image_and_v2_an_extra_data_block() {
        // v2: post-header of 10 bytes, extra data of 2 + 3 bytes.
        let mut data = vec![0x2a, 0, 0, 0, 0, 0, 0x01, 0, 5, 0, 0xaa, 0xbb, 0xcc];
        data.push(4);
        data.push(0x0f);
        image(&mut data, b"lab", 3, 30);
        assert_eq!(
            newest_beat(WRITE_ROWS_V2, &data, 10, &COLUMNS, b"lab"),
            Some(Some((3, 30)))
        );
    }

    #[test]
    fn nulls_and_absent_columns_are_no_beat() {
        // Only the key in the after image (a minimal row image): no beat.
        let mut data = vec![0x2a, 0, 0, 0, 0, 0, 0x01, 0, 4, 0x0f, 0x01];
        image(&mut data, b"lab", 3, 30);
        data.push(0);
        data.extend_from_slice(&3u16.to_le_bytes());
        data.extend_from_slice(b"lab");
        assert_eq!(
            newest_beat(UPDATE_ROWS_V1, &data, 8, &COLUMNS, b"lab"),
            Some(None)
        );
        // seq null in the after image.
        let mut data = vec![0x2a, 0, 0, 0, 0, 0, 0x01, 0, 4, 0x0f];
        data.push(0b0010);
        data.extend_from_slice(&3u16.to_le_bytes());
        data.extend_from_slice(b"lab");
        data.extend_from_slice(&30i64.to_le_bytes());
        data.extend_from_slice(&7u32.to_le_bytes());
        assert_eq!(
            newest_beat(WRITE_ROWS_V1, &data, 8, &COLUMNS, b"lab"),
            Some(None)
        );
    }

    #[test]
    fn what_it_cannot_read_it_leaves_to_the_generic_decoder() {
        let data = update(&[((b"lab", 4, 40), (b"lab", 5, 50))]);
        // Cut short anywhere: unreadable, never a wrong beat.
        for cut in 0..data.len() {
            let got = newest_beat(UPDATE_ROWS_V1, &data[..cut], 8, &COLUMNS, b"lab");
            assert!(got.is_none() || got == Some(None), "cut at {cut}: {got:?}");
        }
        // Another column type, or another column count.
        let mut columns = COLUMNS;
        columns[3] = (246, &[10, 2]); // DECIMAL
        assert_eq!(
            newest_beat(UPDATE_ROWS_V1, &data, 8, &columns, b"lab"),
            None
        );
        assert_eq!(
            newest_beat(UPDATE_ROWS_V1, &data, 8, &COLUMNS[..3], b"lab"),
            None
        );
        // Not an insert or update.
        assert_eq!(newest_beat(25, &data, 8, &COLUMNS, b"lab"), Some(None));
    }
}
