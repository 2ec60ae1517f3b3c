# ndarray helpers shared by the Cython drivers that read arrays through the
# NumPy C API (_gemm, _mlp): cheaper per call than memoryview acquisition,
# which matters for one-row products. Each module calls cnp.import_array().
cimport numpy as cnp
from libc.stdint cimport int64_t


cdef inline int64_t estride(cnp.ndarray x, int dim) noexcept:
    """Stride of dimension `dim` in elements. A dimension of extent 1 is never
    stepped over; calling its stride 1 lets the engine take its unit-stride
    fast paths."""
    if cnp.PyArray_DIM(x, dim) == 1:
        return 1
    return cnp.PyArray_STRIDE(x, dim) // cnp.PyArray_ITEMSIZE(x)


cdef inline cnp.ndarray operand(object x, str who, str name, int ndim, int typenum,
                                bint writeable, str like):
    """x as an ndarray the engine can address: `ndim` dims, dtype `typenum` in
    native byte order, aligned, strides in whole elements (and writeable when
    asked); errors name the caller `who`, the argument `name`, and the
    argument whose dtype it must share (`like`)."""
    if not cnp.PyArray_Check(x):
        raise TypeError(f"{who}: {name} must be a numpy.ndarray, got {type(x).__name__}")
    cdef cnp.ndarray arr = <cnp.ndarray>x
    cdef int d
    if cnp.PyArray_NDIM(arr) != ndim:
        raise ValueError(f"{who}: {name} must be {ndim}-D, got {cnp.PyArray_NDIM(arr)}-D")
    if cnp.PyArray_TYPE(arr) != typenum or not cnp.PyArray_ISNOTSWAPPED(arr):
        raise ValueError(f"{who}: {name} has dtype {arr.dtype}, expected "
                         f"{cnp.PyArray_TypeObjectFromType(typenum).__name__} "
                         f"(native byte order){' like ' + like if like else ''}")
    if not cnp.PyArray_ISALIGNED(arr):
        raise ValueError(f"{who}: {name} is not aligned")
    for d in range(ndim):
        if cnp.PyArray_STRIDE(arr, d) % cnp.PyArray_ITEMSIZE(arr):
            raise ValueError(f"{who}: {name} has strides that are not whole elements")
    if writeable and not cnp.PyArray_ISWRITEABLE(arr):
        raise ValueError(f"{who}: {name} is read-only")
    return arr
