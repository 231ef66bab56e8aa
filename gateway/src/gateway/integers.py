"""Integers as the services' contract carries them: int64, and int32 for max_tokens.

Python's integers and JSON's have no bound; a request's integer past its proto field's range cannot
even be put in the call to a service (protobuf raises while the request is built). Declared on the
request's fields, the range is checked with the rest of the request (a 400 naming the field) and is
part of the OpenAPI schema.
"""

from typing import Annotated

import msgspec

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1

Int64 = Annotated[int, msgspec.Meta(ge=INT64_MIN, le=INT64_MAX)]
Int32 = Annotated[int, msgspec.Meta(ge=INT32_MIN, le=INT32_MAX)]
