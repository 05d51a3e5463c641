#include "column_values.hpp"

namespace idsync {

void cast_column_array(Datum value, Oid type, const TargetTable &t, int c, EState *estate,
                       Datum **values, bool **nulls, int *count)
{
    Oid column_type = t.types[c];
    if (type != UNKNOWNOID && !OidIsValid(get_element_type(getBaseType(type))))
        ereport(ERROR, (errcode(ERRCODE_DATATYPE_MISMATCH),
                        errmsg("values for column \"%s\" must be an array, not type %s",
                               t.columns[c], format_type_be(type))));
    Oid array_type = get_array_type(column_type);
    int16 typlen;
    bool byval;
    get_typlenbyval(type, &typlen, &byval);
    Node *input =
        reinterpret_cast<Node *>(makeConst(type, -1, InvalidOid, typlen, value, false, byval));
    Node *cast = coerce_to_target_type(nullptr, input, type, array_type, t.typmods[c],
                                       COERCION_ASSIGNMENT, COERCE_IMPLICIT_CAST, -1);
    if (cast == nullptr)
        ereport(ERROR, (errcode(ERRCODE_DATATYPE_MISMATCH),
                        errmsg("values for column \"%s\" have type %s, which cannot be cast to %s",
                               t.columns[c], format_type_be(type), format_type_be(array_type))));
    if (cast != input) {
        bool isnull;
        ExprState *state = ExecPrepareExpr(reinterpret_cast<Expr *>(cast), estate);
        value = ExecEvalExprSwitchContext(state, GetPerTupleExprContext(estate), &isnull);
    }

    ArrayType *array = DatumGetArrayTypeP(value);
    if (ARR_NDIM(array) > 1)
        ereport(ERROR,
                (errcode(ERRCODE_DATATYPE_MISMATCH),
                 errmsg("values for column \"%s\" must be a one-dimensional array", t.columns[c])));
    int16 elem_len;
    bool elem_byval;
    char elem_align;
    get_typlenbyvalalign(column_type, &elem_len, &elem_byval, &elem_align);
    deconstruct_array(array, column_type, elem_len, elem_byval, elem_align, values, nulls, count);
}

Oid column_param_type(const TargetTable &t, int c)
{
    return t.as_text[c] ? TEXTARRAYOID : get_array_type(t.types[c]);
}

Datum column_array(const TargetTable &t, int c, Datum *values, bool *nulls, int64 n)
{
    int dims[1] = {static_cast<int>(n)};
    int lbs[1] = {1};
    if (t.as_text[c]) {
        Oid output;
        bool varlena;
        getTypeOutputInfo(t.types[c], &output, &varlena);
        Datum *texts = static_cast<Datum *>(palloc(sizeof(Datum) * Max(n, 1)));
        for (int64 i = 0; i < n; i++)
            texts[i] =
                nulls[i] ? Datum(0) : CStringGetTextDatum(OidOutputFunctionCall(output, values[i]));
        return PointerGetDatum(
            construct_md_array(texts, nulls, 1, dims, lbs, TEXTOID, -1, false, TYPALIGN_INT));
    }
    int16 typlen;
    bool byval;
    char align;
    get_typlenbyvalalign(t.types[c], &typlen, &byval, &align);
    return PointerGetDatum(
        construct_md_array(values, nulls, 1, dims, lbs, t.types[c], typlen, byval, align));
}

ColumnValues read_value_arrays(FunctionCallInfo fcinfo, int first, const TargetTable &t,
                               EState *estate)
{
    if (get_fn_expr_variadic(fcinfo->flinfo))
        ereport(ERROR, (errcode(ERRCODE_DATATYPE_MISMATCH),
                        errmsg("values cannot be passed as a VARIADIC array"),
                        errhint("Pass one array argument per column.")));
    int given = PG_NARGS() - first;
    if (given != t.ncolumns)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("got %d value arrays for %d columns", given, t.ncolumns)));

    ColumnValues v = {};
    v.values = static_cast<Datum **>(palloc(sizeof(Datum *) * t.ncolumns));
    v.nulls = static_cast<bool **>(palloc(sizeof(bool *) * t.ncolumns));
    for (int c = 0; c < t.ncolumns; c++) {
        if (PG_ARGISNULL(first + c))
            ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
                            errmsg("values for column \"%s\" must not be NULL", t.columns[c])));
        Oid type = get_fn_expr_argtype(fcinfo->flinfo, first + c);
        int count;
        cast_column_array(PG_GETARG_DATUM(first + c), type, t, c, estate, &v.values[c], &v.nulls[c],
                          &count);
        if (c > 0 && count != v.nrows)
            ereport(ERROR,
                    (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                     errmsg("value arrays have different lengths"),
                     errdetail("Column \"%s\" has %lld values, column \"%s\" has %d.", t.columns[0],
                               static_cast<long long>(v.nrows), t.columns[c], count)));
        v.nrows = count;
    }
    return v;
}

} // namespace idsync
