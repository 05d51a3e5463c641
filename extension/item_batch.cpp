// The check of a batch of items (merge_items' input) in one pass over its jsonb, before
// anything is written: every item well formed, and the last point. plpgsql needed several
// passes and a regular expression per item for the same.
#include "item_values.hpp"

namespace {

const char kItemsHint[] = "Each item is {\"point\": bigint, \"item\": {column: value, ...} or "
                          "null, \"origin\": uuid or null}, as idsync.items_since returns.";

// Items larger than this are named by their position rather than quoted: turning them into
// text only to keep 200 characters could cost more memory than a message is worth.
constexpr Size kQuotableItem = 64 * 1024;

[[noreturn]] void malformed(JsonbValue *element, int position)
{
    Size size = element->type == jbvBinary   ? element->val.binary.len
                : element->type == jbvString ? element->val.string.len
                                             : 0;
    if (size > kQuotableItem)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("malformed item: item %d of the batch (%zu bytes)", position,
                               static_cast<size_t>(size)),
                        errhint("%s", kItemsHint)));
    Jsonb *jb = JsonbValueToJsonb(element);
    char *text = JsonbToCString(nullptr, &jb->root, VARSIZE(jb));
    // At most 200 characters of it, as left(text, 200) would.
    int chars = 0, bytes = 0;
    while (text[bytes] != '\0' && chars < 200) {
        bytes += pg_mblen(text + bytes);
        chars++;
    }
    text[bytes] = '\0';
    ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("malformed item: %s", text),
                    errhint("%s", kItemsHint)));
}

JsonbValue *field(JsonbContainer *object, const char *key, JsonbValue *out)
{
    return getKeyJsonValueFromContainer(object, key, strlen(key), out);
}

// A change point: a JSON number written without a fraction (5, not 5.0, which the SQL that
// reads the item as text could not cast) in 0 .. 2^63-1 (the bounds made once per batch).
struct PointBounds {
    Datum zero;
    Datum max;
};

bool read_point(const JsonbValue *value, const PointBounds &bounds, int64 *point)
{
    if (value == nullptr || value->type != jbvNumeric)
        return false;
    Datum n = NumericGetDatum(value->val.numeric);
    if (DatumGetInt32(DirectFunctionCall1(numeric_scale, n)) != 0 ||
        DatumGetBool(DirectFunctionCall2(numeric_lt, n, bounds.zero)) ||
        DatumGetBool(DirectFunctionCall2(numeric_gt, n, bounds.max)))
        return false;
    *point = DatumGetInt64(DirectFunctionCall1(numeric_int8, n));
    return true;
}

// A node id as text: 8-4-4-4-12 hexadecimal digits, either case.
bool is_uuid_text(const char *s, int len)
{
    if (len != 36)
        return false;
    for (int i = 0; i < len; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? s[i] != '-' : !isxdigit(static_cast<unsigned char>(s[i])))
            return false;
    }
    return true;
}

} // namespace

bool idsync::check_items(Jsonb *items, int64 *last_point)
{
    PointBounds bounds = {NumericGetDatum(int64_to_numeric(0)),
                          NumericGetDatum(int64_to_numeric(PG_INT64_MAX))};
    bool any = false;
    int64 last = 0;
    int position = 0;
    JsonbIterator *it = JsonbIteratorInit(&items->root);
    JsonbValue element;
    while (idsync::next_array_element(&it, &element)) {
        position++;
        if (element.type != jbvBinary || !JsonContainerIsObject(element.val.binary.data))
            malformed(&element, position);
        JsonbContainer *object = element.val.binary.data;
        JsonbValue point_value, item_value, origin_value;
        int64 point;
        if (!read_point(field(object, "point", &point_value), bounds, &point))
            malformed(&element, position);
        JsonbValue *item = field(object, "item", &item_value);
        bool item_is_object = item != nullptr && item->type == jbvBinary &&
                              JsonContainerIsObject(item->val.binary.data);
        if (item == nullptr || !(item_is_object || item->type == jbvNull))
            malformed(&element, position);
        JsonbValue *origin = field(object, "origin", &origin_value);
        if (origin != nullptr && origin->type != jbvNull &&
            !(origin->type == jbvString &&
              is_uuid_text(origin->val.string.val, origin->val.string.len)))
            malformed(&element, position);
        last = any ? Max(last, point) : point;
        any = true;
    }

    *last_point = last;
    return any;
}
