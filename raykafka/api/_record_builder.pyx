# cython: language_level=3, boundscheck=False, wraparound=False
"""The compiled twin of ``record_builder.PyRecordBuilder``: same attributes, same answers.

Only ``append_value`` (``Producer.send``'s per-message path) is written out in C terms:
the lock is a bare ``PyThread`` lock taken without releasing the GIL when it is free,
the clock is ``clock_gettime``, the buffers grow in place. The general ``append`` is
``record_builder.append_fields``, shared with the pure-Python class.
"""

from cpython cimport array
from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_GET_SIZE, PyByteArray_Resize
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.pythread cimport (
    NOWAIT_LOCK,
    WAIT_LOCK,
    PyThread_acquire_lock,
    PyThread_allocate_lock,
    PyThread_free_lock,
    PyThread_release_lock,
    PyThread_type_lock,
)
from libc.string cimport memcpy
from posix.time cimport CLOCK_REALTIME, clock_gettime, timespec

import array as py_array

from raykafka.api.record_builder import MAX_OFFSET, RECORD_OVERHEAD_BYTES, UNLIMITED, append_fields

cdef Py_ssize_t OVERHEAD = RECORD_OVERHEAD_BYTES
cdef Py_ssize_t OFFSET_LIMIT = MAX_OFFSET


cdef class RecordFutureBase:
    """See ``PyRecordFutureBase``."""
    cdef public object _batch
    cdef public Py_ssize_t _index


cdef class RecordBuilder:
    cdef PyThread_type_lock _lock
    cdef public bytearray values
    cdef public array.array value_offsets
    cdef public object keys
    cdef public object key_offsets
    cdef public object key_valid
    cdef public array.array timestamps
    cdef public object headers
    cdef public Py_ssize_t count
    cdef public Py_ssize_t nbytes
    cdef public bint sealed
    cdef public object result
    cdef public Py_ssize_t batch_size
    cdef public Py_ssize_t max_record_bytes
    cdef public type future_type

    def __cinit__(
        self,
        result=None,
        Py_ssize_t batch_size=UNLIMITED,
        Py_ssize_t max_record_bytes=UNLIMITED,
        type future_type=RecordFutureBase,
    ):
        if not issubclass(future_type, RecordFutureBase):
            raise TypeError(f"future_type must subclass RecordFutureBase, got {future_type!r}")
        self._lock = PyThread_allocate_lock()
        if self._lock == NULL:
            raise MemoryError("RecordBuilder: no lock")
        self.values = bytearray()
        self.value_offsets = py_array.array("i", [0])
        self.keys = None
        self.key_offsets = None
        self.key_valid = None
        self.timestamps = py_array.array("q")
        self.headers = None
        self.result = result
        self.batch_size = batch_size
        self.max_record_bytes = max_record_bytes
        self.future_type = future_type

    def __dealloc__(self):
        if self._lock != NULL:
            PyThread_free_lock(self._lock)

    cdef inline void _acquire(self):
        if not PyThread_acquire_lock(self._lock, NOWAIT_LOCK):
            with nogil:  # another thread has it: wait without holding the GIL it may need
                PyThread_acquire_lock(self._lock, WAIT_LOCK)

    def append(self, value, key, timestamp_ms, headers):
        """Add any record (checked by the caller); returns its index in the batch."""
        self._acquire()
        try:
            if self.sealed:
                raise RuntimeError("append to a sealed RecordBuilder")
            return append_fields(self, value, key, timestamp_ms, headers)
        finally:
            PyThread_release_lock(self._lock)

    def append_value(self, value):
        """See ``PyRecordBuilder.append_value``."""
        cdef timespec now
        cdef Py_ssize_t size, used, index
        cdef long long stamp
        cdef RecordFutureBase future
        if type(value) is not bytes:
            return None
        size = PyBytes_GET_SIZE(value)
        if size > self.max_record_bytes:
            return None
        clock_gettime(CLOCK_REALTIME, &now)
        stamp = <long long>now.tv_sec * 1000 + now.tv_nsec // 1000000
        self._acquire()
        try:
            used = PyByteArray_GET_SIZE(self.values)
            if (
                self.sealed
                or (self.count and self.nbytes + size + OVERHEAD > self.batch_size)
                or used + size > OFFSET_LIMIT
            ):
                return None
            if self.keys is not None:
                index = append_fields(self, value, None, stamp, None)
            else:
                PyByteArray_Resize(self.values, used + size)  # over-allocates: amortized O(1)
                memcpy(PyByteArray_AS_STRING(self.values) + used, PyBytes_AS_STRING(value), size)
                index = self.count
                array.resize_smart(self.value_offsets, index + 2)
                self.value_offsets.data.as_ints[index + 1] = <int>(used + size)
                array.resize_smart(self.timestamps, index + 1)
                self.timestamps.data.as_longlongs[index] = stamp
                self.count = index + 1
                self.nbytes += size + OVERHEAD
        finally:
            PyThread_release_lock(self._lock)
        future = RecordFutureBase.__new__(self.future_type)
        future._batch = self.result
        future._index = index
        return future

    def seal(self):
        """Take no more records: every later append_value returns None."""
        self._acquire()
        self.sealed = True
        PyThread_release_lock(self._lock)
