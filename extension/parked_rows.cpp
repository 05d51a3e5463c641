#include "parked_rows.hpp"

#include "state_access.hpp"

namespace idsync {

namespace {

void push_key(JsonbParseState **state, const char *key)
{
    JsonbValue v;
    v.type = jbvString;
    v.val.string.val = const_cast<char *>(key);
    v.val.string.len = strlen(key);
    pushJsonbValue(state, WJB_KEY, &v);
}

void push_text(JsonbParseState **state, const char *key, const char *text)
{
    push_key(state, key);
    JsonbValue v;
    if (text == nullptr) {
        v.type = jbvNull;
    } else {
        v.type = jbvString;
        v.val.string.val = const_cast<char *>(text);
        v.val.string.len = strlen(text);
    }
    pushJsonbValue(state, WJB_VALUE, &v);
}

} // namespace

void park_row(ParkedRows &p, const int64 *point, Jsonb *item, int sqlerrcode, const char *message,
              const char *detail)
{
    if (p.count++ == 0)
        pushJsonbValue(&p.state, WJB_BEGIN_ARRAY, nullptr);
    pushJsonbValue(&p.state, WJB_BEGIN_OBJECT, nullptr);
    push_key(&p.state, "point");
    JsonbValue v;
    if (point == nullptr) {
        v.type = jbvNull;
    } else {
        v.type = jbvNumeric;
        v.val.numeric = int64_to_numeric(*point);
    }
    pushJsonbValue(&p.state, WJB_VALUE, &v);
    push_key(&p.state, "item");
    v.type = jbvBinary;
    v.val.binary.data = &item->root;
    v.val.binary.len = VARSIZE(item) - VARHDRSZ;
    pushJsonbValue(&p.state, WJB_VALUE, &v);
    push_text(&p.state, "sqlstate", pstrdup(unpack_sql_state(sqlerrcode))); // a static buffer
    push_text(&p.state, "message", message);
    push_text(&p.state, "detail", detail);
    pushJsonbValue(&p.state, WJB_END_OBJECT, nullptr);
}

int64 write_parked(ParkedRows &p, Oid relid, Datum source, bool source_null)
{
    if (p.count == 0)
        return 0;
    JsonbValue *array = pushJsonbValue(&p.state, WJB_END_ARRAY, nullptr);
    Jsonb *rejects = JsonbValueToJsonb(array);
    int64 parked =
        static_cast<int64>(park_rejects(relid, source, source_null, JsonbPGetDatum(rejects)));
    p = {nullptr, 0};
    return parked;
}

} // namespace idsync
