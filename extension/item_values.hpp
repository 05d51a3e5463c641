// The values of replicated rows as items carry them (jsonb), read into column types the way
// jsonb_populate_record reads them, so that the C merge and the SQL merge store the same values.
#pragma once

#include "pg.hpp"

namespace idsync {

struct KeyResolver;

struct ItemColumn {
    const char *name;
    int length;
    FmgrInfo input; // the type's input function
    Oid ioparam;
    int32 typmod;
    Oid type;
    bool json;   // json or jsonb (or a domain over one): takes the JSON text of any value
    bool domain; // a domain, whose constraints also judge a NULL
    // An array or composite (or a domain over one): jsonb_populate_record reads these in ways
    // of their own (a JSON array element by element, an object field by field), so a merge
    // reads them through jsonb_to_record itself (merge_items.cpp).
    bool populated;
    // A translated reference: the value is the natural key of a row of another table, resolved
    // to that row's local id (reference_keys.hpp); nullptr for a plain column.
    KeyResolver *reference;
};

// Prepares the reading of a column of attribute `att`.
void prepare_item_column(ItemColumn &column, Form_pg_attribute att);

// A non-null item value in the column's type: a string as its text, a number, boolean, object
// or array as its JSON text (any value, for json columns); errors as the type's input raises.
// Not for populated columns.
Datum read_item_value(ItemColumn &column, JsonbValue *value);

// Pins the settings that change how values print (DateStyle ISO, IntervalStyle postgres, float
// digits shortest-exact) for text that other nodes read back, when the session's differ: a date
// written as "01/02/2024" would be another day on a node that reads it MDY. Returns the GUC
// level for unpin_output_styles, or -1 when nothing was pinned.
int pin_output_styles();
void unpin_output_styles(int level);

// Pushes a stored value of type `type` as a JSON value, as to_jsonb shows it closely enough for
// jsonb_populate_record to read it back: numbers and booleans as themselves, json as JSON,
// everything else as its text.
void push_value_json(JsonbParseState **state, Oid type, Datum value);

// Checks a NULL (a JSON null or an absent key) against the column's domain, as
// jsonb_populate_record does: a NOT NULL or CHECK domain raises its error.
void check_item_null(ItemColumn &column);

// The next element of a JSON array iterated from JsonbIteratorInit (nested containers stay
// whole, as jbvBinary); false at the end.
bool next_array_element(JsonbIterator **it, JsonbValue *element);

// Checks a batch of items (a JSON array) in one pass before anything is written: 22023 naming
// the first malformed item. Returns false for a batch without items, else true with the largest
// point (item_batch.cpp).
bool check_items(Jsonb *items, int64 *last_point);

// The column named by object key `key`, or -1.
int find_item_column(const ItemColumn *columns, int ncolumns, const JsonbValue *key);

} // namespace idsync
