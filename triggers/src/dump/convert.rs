//! Arrow id column to goods ids.

use arrow_array::cast::AsArray;
use arrow_array::types::{Decimal128Type, Int32Type, Int64Type, UInt32Type, UInt64Type};
use arrow_array::{Array, ArrayRef};
use arrow_schema::DataType;

use model::GoodsId;

pub fn accepts(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Int64 | DataType::UInt64 | DataType::Int32 | DataType::UInt32 | DataType::Utf8 | DataType::LargeUtf8
    ) || matches!(data_type, DataType::Decimal128(_, 0))
}

fn non_negative(value: i128) -> Result<GoodsId, String> {
    GoodsId::try_from(value).map_err(|_| format!("id {value} is not a non-negative 64-bit integer"))
}

/// Converts one column, skipping nulls.
pub fn goods_ids(column: &ArrayRef) -> Result<Vec<GoodsId>, String> {
    let mut out = Vec::with_capacity(column.len() - column.null_count());
    match column.data_type() {
        DataType::Int64 => {
            for v in column.as_primitive::<Int64Type>().iter().flatten() {
                out.push(non_negative(v as i128)?);
            }
        }
        DataType::Int32 => {
            for v in column.as_primitive::<Int32Type>().iter().flatten() {
                out.push(non_negative(v as i128)?);
            }
        }
        DataType::UInt64 => out.extend(column.as_primitive::<UInt64Type>().iter().flatten()),
        DataType::UInt32 => out.extend(column.as_primitive::<UInt32Type>().iter().flatten().map(GoodsId::from)),
        DataType::Decimal128(_, 0) => {
            for v in column.as_primitive::<Decimal128Type>().iter().flatten() {
                out.push(non_negative(v)?);
            }
        }
        DataType::Utf8 => {
            for v in column.as_string::<i32>().iter().flatten() {
                out.push(parse_text(v)?);
            }
        }
        DataType::LargeUtf8 => {
            for v in column.as_string::<i64>().iter().flatten() {
                out.push(parse_text(v)?);
            }
        }
        other => return Err(format!("unsupported type {other}")),
    }
    Ok(out)
}

fn parse_text(v: &str) -> Result<GoodsId, String> {
    v.trim().parse().map_err(|_| format!("`{v}` is not a decimal goods id"))
}
