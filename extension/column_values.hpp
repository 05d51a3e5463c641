// The input rows of a call, one array per given column, cast to the column types.
#pragma once

#include "target_table.hpp"

namespace idsync {

struct ColumnValues {
    int64 nrows;
    Datum **values; // [column][row], of the column's type
    bool **nulls;   // [column][row]
};

// Reads the arguments fcinfo->args[first .. first + target.ncolumns - 1], each an array of the
// values of one given column, and casts them to the column types with assignment casts, as
// INSERT would. A text literal of unknown type is read as an array of the column type.
ColumnValues read_value_arrays(FunctionCallInfo fcinfo, int first, const TargetTable &target,
                               EState *estate);

// Casts one array `value` of type `type` to an array of given column `column`'s type.
void cast_column_array(Datum value, Oid type, const TargetTable &target, int column, EState *estate,
                       Datum **values, bool **nulls, int *count);

// The type of a parameter holding values of given column `column`: its array type, or text[]
// when the values travel as text (TargetTable::as_text).
Oid column_param_type(const TargetTable &target, int column);

// A one-dimensional array of given column `column`'s type (or of its values' text) from n
// values: a statement's parameter, of column_param_type.
Datum column_array(const TargetTable &target, int column, Datum *values, bool *nulls, int64 n);

} // namespace idsync
