"""Stored records as objects in the JetStream object store (the application's FileStore)."""

import io

from nats.js import JetStreamContext, api
from nats.js.errors import BucketNotFoundError, ObjectNotFoundError
from nats.js.object_store import ObjectStore

from datasets_service.application import BlobMissing
from eventlog import patiently

BUCKET = "wb-datasets"


class DatasetFiles:
    """Puts, gets and deletes objects (pages of records; legacy datasets' whole files) by name."""

    def __init__(self, store: ObjectStore, bucket: str = BUCKET) -> None:
        self.store = store
        self.stream = f"OBJ_{bucket}"  # the JetStream stream holding the bucket (its replicas are checked at start)

    @classmethod
    async def open(cls, js: JetStreamContext, bucket: str = BUCKET, replicas: int = 1) -> "DatasetFiles":
        """The bucket's files; creates the bucket when it is missing (safe from several processes)."""
        return await patiently(lambda: cls._open(js, bucket, replicas), f"opening object store {bucket}")

    @classmethod
    async def _open(cls, js: JetStreamContext, bucket: str, replicas: int) -> "DatasetFiles":
        try:
            store = await js.object_store(bucket)
        except BucketNotFoundError:
            store = await js.create_object_store(
                bucket,
                api.ObjectStoreConfig(description="datasets' stored records", storage=api.StorageType.FILE),
                replicas=replicas,
            )
        return cls(store, bucket)

    async def put(self, name: str, data: bytes) -> None:
        await self.store.put(name, data)

    async def get(self, name: str) -> bytes:
        # writeinto: the client's default concatenates bytes per chunk, quadratic on large objects.
        sink = io.BytesIO()
        try:
            await self.store.get(name, writeinto=sink)
        except ObjectNotFoundError:
            raise BlobMissing(name) from None
        return sink.getvalue()

    async def delete(self, name: str) -> None:
        try:
            await self.store.delete(name)
        except ObjectNotFoundError:
            raise BlobMissing(name) from None
