// The prefetch hint is a static inline function in include/chukan_prefetch.h; SwiftPM
// wants a C target to have a source file.
#include "chukan_prefetch.h"
