"""A pickle writer that emits what Python 2's ``cPickle.dump(obj, f, 2)`` wrote, for the
synthetic CIFAR files.

The official CIFAR "python version" files were written by Python 2 with numpy 1.x. Python 3's
own pickler at protocol 2 writes something else: ``bytes`` become ``_codecs.encode(text,
'latin1')`` calls and numpy writes a unicode dtype code with boolean flags. This writer keeps
the originals' opcodes, so the reader is tested on the format people have on disk:

* a Python 2 ``str`` (here: ``bytes``, or an ASCII ``str``) is ``SHORT_BINSTRING`` /
  ``BINSTRING``; read back with ``encoding='bytes'`` it is ``bytes``;
* an ``ndarray`` is numpy 1.x's reduce: ``numpy.core.multiarray._reconstruct(numpy.ndarray,
  (0,), 'b')`` then ``BUILD`` with ``(1, shape, dtype, False, raw bytes)``; its dtype is
  ``numpy.dtype('u1', 0, 1)`` (integer flags) with state ``(3, '|', None, None, None, -1, -1,
  0)``, as numpy 1.x's ``arraydescr_reduce`` builds them.

Supported values: ``None``, ``bool``, ``int``, ``bytes``, ASCII ``str``, ``list``, ``tuple``,
``dict`` and C-contiguous numpy arrays of numbers. Nothing is shared (no ``BINGET``).
"""
from __future__ import annotations

import struct

import numpy as np

_BATCH = 1000  # cPickle's batch size for APPENDS / SETITEMS


class _Writer:
    def __init__(self):
        self.out = bytearray(b'\x80\x02')  # PROTO 2
        self.memo = 0

    def put(self) -> None:
        self.memo += 1
        if self.memo < 256:
            self.out += b'q' + bytes([self.memo])                      # BINPUT
        else:
            self.out += b'r' + struct.pack('<I', self.memo)            # LONG_BINPUT

    def save(self, obj) -> None:
        if obj is None:
            self.out += b'N'
        elif obj is True or obj is False:
            self.out += b'\x88' if obj else b'\x89'                    # NEWTRUE / NEWFALSE
        elif isinstance(obj, int | np.integer):
            self.save_int(int(obj))
        elif isinstance(obj, bytes | str):
            self.save_str(obj.encode('ascii') if isinstance(obj, str) else obj)
        elif isinstance(obj, tuple):
            self.save_tuple(obj)
        elif isinstance(obj, list):
            self.out += b']'                                            # EMPTY_LIST
            self.put()
            self.batched(obj, b'a', b'e', self.save)
        elif isinstance(obj, dict):
            self.out += b'}'                                            # EMPTY_DICT
            self.put()
            self.batched(list(obj.items()), b's', b'u', lambda kv: (self.save(kv[0]),
                                                                    self.save(kv[1])))
        elif isinstance(obj, np.ndarray):
            self.save_array(obj)
        else:
            raise TypeError(f'py2pickle: cannot write {type(obj).__name__}')

    def save_int(self, value: int) -> None:
        if 0 <= value < 256:
            self.out += b'K' + bytes([value])                           # BININT1
        elif 0 <= value < 65536:
            self.out += b'M' + struct.pack('<H', value)                 # BININT2
        elif -2**31 <= value < 2**31:
            self.out += b'J' + struct.pack('<i', value)                 # BININT
        else:
            raw = value.to_bytes((value.bit_length() + 8) // 8, 'little', signed=True)
            self.out += b'\x8a' + bytes([len(raw)]) + raw               # LONG1

    def save_str(self, raw: bytes) -> None:
        if len(raw) < 256:
            self.out += b'U' + bytes([len(raw)]) + raw                  # SHORT_BINSTRING
        else:
            self.out += b'T' + struct.pack('<i', len(raw)) + raw        # BINSTRING
        self.put()

    def save_tuple(self, items: tuple) -> None:
        if not items:
            self.out += b')'                                            # EMPTY_TUPLE
            return
        if len(items) > 3:
            self.out += b'('                                            # MARK
        for item in items:
            self.save(item)
        self.out += {1: b'\x85', 2: b'\x86', 3: b'\x87'}.get(len(items), b't')
        self.put()

    def batched(self, items: list, one: bytes, many: bytes, save_item) -> None:
        for start in range(0, len(items), _BATCH):
            chunk = items[start:start + _BATCH]
            if len(chunk) > 1:
                self.out += b'('
            for item in chunk:
                save_item(item)
            self.out += many if len(chunk) > 1 else one

    def save_global(self, module: str, name: str) -> None:
        self.out += b'c' + module.encode() + b'\n' + name.encode() + b'\n'  # GLOBAL
        self.put()

    def save_dtype(self, dtype: np.dtype) -> None:
        if dtype.hasobject or dtype.fields is not None or dtype.subdtype is not None:
            raise TypeError(f'py2pickle: only plain numeric dtypes, got {dtype}')
        endian = '|' if dtype.itemsize == 1 else ('>' if dtype.byteorder == '>' else '<')
        self.save_global('numpy', 'dtype')
        self.save_tuple((f'{dtype.kind}{dtype.itemsize}', 0, 1))
        self.out += b'R'                                                # REDUCE
        self.put()
        self.save_tuple((3, endian, None, None, None, -1, -1, 0))
        self.out += b'b'                                                # BUILD

    def save_array(self, array: np.ndarray) -> None:
        array = np.ascontiguousarray(array)
        self.save_global('numpy.core.multiarray', '_reconstruct')
        self.save_global('numpy', 'ndarray')
        self.save_tuple((0,))
        self.save_str(b'b')
        self.out += b'\x87'                                             # TUPLE3
        self.put()
        self.out += b'R'
        self.put()
        self.out += b'('
        self.save_int(1)
        self.save_tuple(tuple(int(d) for d in array.shape))
        self.save_dtype(array.dtype)
        self.out += b'\x89'                                             # not Fortran order
        self.save_str(array.tobytes())
        self.out += b't'                                                # TUPLE
        self.put()
        self.out += b'b'


def dumps_py2(obj) -> bytes:
    """``obj`` as Python 2's ``cPickle.dumps(obj, 2)`` with numpy 1.x wrote it."""
    writer = _Writer()
    writer.save(obj)
    return bytes(writer.out + b'.')                                     # STOP
