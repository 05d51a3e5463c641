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

// A one-dimensional array of given column `column`'s type from n values.
Datum column_array(const TargetTable &target, int column, Datum *values, bool *nulls, int64 n);

} // namespace idsync
