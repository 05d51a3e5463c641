#include "item_values.hpp"

namespace idsync {

void prepare_item_column(ItemColumn &c, Form_pg_attribute att)
{
    Oid base = getBaseType(att->atttypid);
    c.populated = type_is_array(base) || type_is_rowtype(base);
    c.name = pstrdup(NameStr(att->attname));
    c.length = strlen(c.name);
    Oid input;
    getTypeInputInfo(att->atttypid, &input, &c.ioparam);
    fmgr_info(input, &c.input);
    c.typmod = att->atttypmod;
    c.type = att->atttypid;
    c.json = base == JSONOID || base == JSONBOID;
    c.domain = base != att->atttypid;
    c.reference = nullptr;
}

Datum read_item_value(ItemColumn &c, JsonbValue *v)
{
    if (c.populated)
        ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                        errmsg("a natural key cannot hold column %s of type %s", c.name,
                               format_type_be(c.type))));
    char *text;
    if (c.json || v->type == jbvBinary) {
        Jsonb *jb = JsonbValueToJsonb(v);
        text = JsonbToCString(nullptr, &jb->root, VARSIZE(jb));
    } else if (v->type == jbvString) {
        text = pnstrdup(v->val.string.val, v->val.string.len);
    } else if (v->type == jbvBool) {
        text = pstrdup(v->val.boolean ? "true" : "false");
    } else if (v->type == jbvNumeric) {
        text = DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(v->val.numeric)));
    } else {
        elog(ERROR, "idsync: unexpected jsonb value type %d", static_cast<int>(v->type));
    }
    return InputFunctionCall(&c.input, text, c.ioparam, c.typmod);
}

int pin_output_styles()
{
    if (DateStyle == USE_ISO_DATES && IntervalStyle == INTSTYLE_POSTGRES && extra_float_digits > 0)
        return -1;
    int level = NewGUCNestLevel();
    (void)set_config_option("datestyle", "ISO", PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true,
                            0, false);
    (void)set_config_option("intervalstyle", "postgres", PGC_USERSET, PGC_S_SESSION,
                            GUC_ACTION_SAVE, true, 0, false);
    (void)set_config_option("extra_float_digits", "1", PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE,
                            true, 0, false);
    return level;
}

void unpin_output_styles(int level)
{
    if (level >= 0)
        AtEOXact_GUC(true, level);
}

void check_item_null(ItemColumn &c)
{
    if (c.domain)
        InputFunctionCall(&c.input, nullptr, c.ioparam, c.typmod); // domain_in is not strict
}

bool next_array_element(JsonbIterator **it, JsonbValue *element)
{
    JsonbIteratorToken token;
    while ((token = JsonbIteratorNext(it, element, true)) != WJB_DONE)
        if (token == WJB_ELEM)
            return true;
    return false;
}

int find_item_column(const ItemColumn *columns, int n, const JsonbValue *key)
{
    for (int c = 0; c < n; c++)
        if (columns[c].length == key->val.string.len &&
            memcmp(columns[c].name, key->val.string.val, columns[c].length) == 0)
            return c;
    return -1;
}

void push_value_json(JsonbParseState **state, Oid type, Datum value)
{
    Oid base = getBaseType(type);
    JsonbValue v;
    if (base == JSONBOID) {
        Jsonb *jb = DatumGetJsonbP(value);
        v.type = jbvBinary;
        v.val.binary.data = &jb->root;
        v.val.binary.len = VARSIZE(jb) - VARHDRSZ;
        pushJsonbValue(state, WJB_VALUE, &v);
        return;
    }
    Oid output;
    bool varlena;
    getTypeOutputInfo(type, &output, &varlena);
    char *text = OidOutputFunctionCall(output, value);
    if (base == JSONOID) {
        Jsonb *jb = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(text)));
        v.type = jbvBinary;
        v.val.binary.data = &jb->root;
        v.val.binary.len = VARSIZE(jb) - VARHDRSZ;
    } else if (base == BOOLOID) {
        v.type = jbvBool;
        v.val.boolean = DatumGetBool(value);
    } else if ((base == INT2OID || base == INT4OID || base == INT8OID || base == NUMERICOID ||
                base == FLOAT4OID || base == FLOAT8OID) &&
               strpbrk(text, "NnIi") == nullptr) { // not NaN nor Infinity, which JSON lacks
        v.type = jbvNumeric;
        v.val.numeric = DatumGetNumeric(DirectFunctionCall3(
            numeric_in, CStringGetDatum(text), ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1)));
    } else {
        v.type = jbvString;
        v.val.string.val = text;
        v.val.string.len = strlen(text);
    }
    pushJsonbValue(state, WJB_VALUE, &v);
}

} // namespace idsync
