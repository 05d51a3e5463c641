// idsync.applying: on while idsync applies remote rows (merges) or reclaims tombstones. The
// triggers of registered tables read it to tell idsync's own writes from the application's.
// The merge functions turn it on with a SET clause, so it is restored when they return or fail.
#pragma once

namespace idsync {

extern bool applying;

} // namespace idsync
