"""The bridges between the daemon's event loop and the threads that do blocking work."""

from __future__ import annotations

import asyncio

import pytest

from minicontainer.engine.threads import QUEUED_CHUNKS, ChunkReader, UploadCut, output_of, progress_of


def test_progress_comes_as_it_is_reported_and_a_failure_is_the_last_message():
    def work(progress):
        progress({"status": "one"})
        progress({"status": "two"})
        raise RuntimeError("the registry went away")

    async def collect():
        return [msg async for msg in progress_of(work)]

    assert asyncio.run(collect()) == [{"status": "one"}, {"status": "two"},
                                      {"error": "the registry went away",
                                       "errorDetail": {"message": "the registry went away"}}]


def test_what_a_thread_writes_streams_out_and_the_writer_waits_for_a_slow_reader():
    written = []

    def work(out):
        for i in range(QUEUED_CHUNKS * 3):
            out.write(b"%d," % i)
            written.append(i)

    async def read_slowly():
        got = b""
        async for chunk in output_of(work):
            # The writer can never be more than the queue's length ahead of us.
            assert len(written) - got.count(b",") <= QUEUED_CHUNKS + 2
            got += chunk
            await asyncio.sleep(0.001)
        return got

    assert asyncio.run(read_slowly()) == b"".join(b"%d," % i for i in range(QUEUED_CHUNKS * 3))


def test_a_save_read_to_its_end_leaves_no_task_behind():
    async def read_all():
        async for _ in output_of(lambda out: out.write(b"tar")):
            pass
        await asyncio.sleep(0.05)
        return [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]

    assert asyncio.run(read_all()) == []


def test_a_writers_failure_is_raised_after_its_last_chunk():
    def work(out):
        out.write(b"half a tar")
        raise ValueError("no such image")

    async def read():
        chunks = []
        with pytest.raises(ValueError, match="no such image"):
            async for chunk in output_of(work):
                chunks.append(chunk)
        return chunks

    assert asyncio.run(read()) == [b"half a tar"]


def test_an_upload_is_read_by_a_thread_as_a_file():
    async def upload():
        for piece in (b"abc", b"", b"defgh", b"ij"):
            await asyncio.sleep(0)
            yield piece

    async def scenario():
        reader = ChunkReader()
        feeding = asyncio.ensure_future(reader.feed(upload()))
        got = await asyncio.get_running_loop().run_in_executor(None, lambda: [reader.read(4), reader.read(4),
                                                                             reader.read(4), reader.read()])
        await feeding
        return got

    assert asyncio.run(scenario()) == [b"abcd", b"efgh", b"ij", b""]


def test_a_reader_that_gives_up_does_not_block_the_upload():
    sent = [0]

    async def endless():
        while True:
            await asyncio.sleep(0)
            sent[0] += 1
            yield b"z" * 1024

    async def scenario():
        reader = ChunkReader()
        feeding = asyncio.ensure_future(reader.feed(endless()))
        await asyncio.get_running_loop().run_in_executor(None, reader.read, 10)
        reader.close()  # e.g. the tar turned out to be garbage
        await asyncio.sleep(0.2)
        before = sent[0]
        await asyncio.sleep(0.3)
        # Nobody reads the queue any more, yet the upload is still consumed (and dropped): a full
        # queue would have stopped it at QUEUED_CHUNKS pieces.
        assert sent[0] > before > QUEUED_CHUNKS + 1
        feeding.cancel()
        await asyncio.gather(feeding, return_exceptions=True)

    asyncio.run(scenario())


def test_a_cut_upload_is_an_error_for_the_reader_never_a_clean_end():
    """A tar cut on a member boundary would otherwise read as a whole, smaller one."""
    async def cut():
        yield b"a" * 512
        raise ConnectionError("the client left")

    async def scenario():
        reader = ChunkReader()
        feeding = asyncio.ensure_future(reader.feed(cut()))
        with pytest.raises(UploadCut):
            await asyncio.get_running_loop().run_in_executor(None, reader.read)
        await asyncio.gather(feeding, return_exceptions=True)

    asyncio.run(scenario())


def test_a_reader_waiting_for_more_wakes_up_when_the_upload_is_abandoned():
    async def silent():
        yield b"first"
        await asyncio.sleep(3600)  # a client that says no more and does not leave
        yield b"never"

    async def scenario():
        reader = ChunkReader()
        feeding = asyncio.ensure_future(reader.feed(silent()))
        reading = asyncio.get_running_loop().run_in_executor(None, reader.read)
        await asyncio.sleep(0.1)
        reader.abort()  # e.g. the daemon stops
        with pytest.raises(UploadCut):
            await asyncio.wait_for(reading, 5)
        feeding.cancel()
        await asyncio.gather(feeding, return_exceptions=True)

    asyncio.run(scenario())


def test_many_uploads_at_once_do_not_starve_the_threads_that_read_them():
    """More uploads than the executor has threads: the feeding side takes no thread, so the readers
    that have one finish and make room for the others."""
    async def source(i):
        for _ in range(QUEUED_CHUNKS + 4):
            await asyncio.sleep(0)
            yield bytes([i]) * 1000

    async def scenario():
        loop = asyncio.get_running_loop()
        readers = [ChunkReader() for _ in range(12)]
        feeding = [asyncio.ensure_future(r.feed(source(i))) for i, r in enumerate(readers)]
        got = await asyncio.wait_for(asyncio.gather(*(loop.run_in_executor(None, r.read) for r in readers)), 10)
        await asyncio.gather(*feeding)
        return got

    got = asyncio.run(scenario())
    assert [len(g) for g in got] == [(QUEUED_CHUNKS + 4) * 1000] * 12 and got[5][:1] == bytes([5])


def test_a_stalled_upload_does_not_hold_up_a_cancelled_load():
    """The daemon stops (its connection tasks are cancelled) while a client's upload hangs: the load
    must end at once, not wait for the rest of the upload."""
    from minicontainer.engine.service import Engine

    async def stalled():
        yield b"x" * 100
        await asyncio.sleep(3600)
        yield b"never"

    async def scenario():
        reader = ChunkReader()

        def work(progress):
            progress({"status": "reading"})
            reader.read()  # waits for the rest, which never comes

        async def consume():
            async for _ in Engine._with_upload(stalled(), reader, work):
                pass

        task = asyncio.ensure_future(consume())
        await asyncio.sleep(0.2)
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=2)
        assert task in done, "the cancelled load was still waiting for its upload"

    asyncio.run(scenario())
