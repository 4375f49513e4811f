#ifndef CHUKAN_CPROTOBUFC_SHIM_H
#define CHUKAN_CPROTOBUFC_SHIM_H
#include <protobuf-c/protobuf-c.h>
#endif
