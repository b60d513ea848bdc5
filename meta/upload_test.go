package meta_test

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/internal/testkit"
	"github.com/socialcrm/socialcrm/meta"
	"github.com/socialcrm/socialcrm/meta/metatest"
)

// video is a fake local video file of n bytes.
func video(n int) *bytes.Reader { return bytes.NewReader(bytes.Repeat([]byte("mp4!"), n/4)) }

// uploads returns the upload requests the emulator received: container id
// and offset header of each.
func uploads(srv *metatest.Server) (container string, offsets []string) {
	for _, r := range srv.Requests() {
		if rest, ok := strings.CutPrefix(r.Path, "/ig-api-upload/"); ok && r.Method == "POST" {
			_, container, _ = strings.Cut(rest, "/")
			offsets = append(offsets, r.Header.Get("offset"))
		}
	}
	return container, offsets
}

func countPath(srv *metatest.Server, method, path string) int {
	n := 0
	for _, r := range srv.Requests() {
		if r.Method == method && r.Path == path {
			n++
		}
	}
	return n
}

func TestPublishVideoResumes(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		e := newIGEnv(t, db)
		_, _, c := e.pageClient(allFeatures)
		file := video(256 << 10)
		size := file.Size()
		// The first upload request breaks after 40 KiB of its 64: the client
		// asks how much arrived and resumes from there.
		require.NoError(t, e.srv.DropUpload(40<<10))
		var progress [][2]int64
		m, _, err := c.Instagram.PublishVideo(e.ctx, igID, meta.VideoUpload{Caption: "Behind the scenes", File: file, Size: size,
			ChunkSize: 64 << 10, PollInterval: 10 * time.Second, Timeout: 5 * time.Minute,
			Progress: func(sent, total int64) { progress = append(progress, [2]int64{sent, total}) }})
		require.NoError(t, err)
		require.NotEmpty(t, m.ID)

		container, offsets := uploads(e.srv)
		require.Equal(t, []string{"0", "40960", "106496", "172032", "237568"}, offsets)
		got, announced, err := e.srv.UploadedBytes(container)
		require.NoError(t, err)
		require.Equal(t, size, got)
		require.Equal(t, size, announced)
		require.Equal(t, [][2]int64{{106496, size}, {172032, size}, {237568, size}, {size, size}}, progress)
		for _, r := range e.srv.Requests() {
			if r.Path == "/"+igID+"/media" && r.Method == "POST" {
				require.Equal(t, "resumable", r.Form.Get("upload_type"))
				require.Equal(t, "REELS", r.Form.Get("media_type"))
				require.Empty(t, r.Form.Get("video_url"))
			}
		}
		require.Equal(t, 1, countPath(e.srv, "POST", "/"+igID+"/media_publish"))
		require.Contains(t, e.auditActions(), "meta.instagram.publish")
		testkit.RequireNoSecret(t, e.logText(), appSecret)
	})
}

func TestPublishVideoFailures(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		e := newIGEnv(t, db)
		_, _, c := e.pageClient(allFeatures)
		file := video(32 << 10)

		// Dropped more often than allowed: an upload error, nothing published.
		require.NoError(t, e.srv.DropUpload(1000))
		require.NoError(t, e.srv.DropUpload(2000))
		_, _, err := c.Instagram.PublishVideo(e.ctx, igID, meta.VideoUpload{Kind: meta.MediaStory, File: file, Size: file.Size(), MaxResumes: 1,
			PollInterval: time.Second, Timeout: time.Minute})
		var ue *meta.UploadError
		require.ErrorAs(t, err, &ue)
		require.ErrorIs(t, err, meta.ErrUpload)
		require.EqualValues(t, 1000, ue.Offset)
		require.Zero(t, countPath(e.srv, "POST", "/"+igID+"/media_publish"))

		// The publish answer is lost: the outcome is unknown, the request
		// is not sent again, and the container says it was published.
		e.srv.ClearRequests()
		require.NoError(t, e.srv.DropAnswer("POST", "/*/media_publish", 1))
		_, _, err = c.Instagram.PublishVideo(e.ctx, igID, meta.VideoUpload{File: file, Size: file.Size(),
			PollInterval: time.Second, Timeout: time.Minute})
		var oe *meta.OutcomeUnknownError
		require.ErrorAs(t, err, &oe)
		require.ErrorIs(t, err, meta.ErrOutcomeUnknown)
		container, _ := uploads(e.srv)
		require.Equal(t, container, oe.ContainerID)
		require.Equal(t, 1, countPath(e.srv, "POST", "/"+igID+"/media_publish"))
		st, _, err := c.Instagram.Container(e.ctx, oe.ContainerID)
		require.NoError(t, err)
		require.Equal(t, meta.StatusPublished, st.Code)

		// Bad requests fail before any call.
		e.srv.ClearRequests()
		for _, v := range []meta.VideoUpload{
			{File: file}, {File: file, Size: file.Size(), Kind: meta.MediaImage}, {Size: 10},
			{File: file, Size: file.Size(), ChunkSize: -1},
		} {
			_, _, err := c.Instagram.PublishVideo(e.ctx, igID, v)
			require.ErrorIs(t, err, meta.ErrConfig)
		}
		// Instagram Login has no resumable upload: a flavour error.
		ig := e.igClient(e.connectInstagram(creatorID, igFeatures))
		e.srv.ClearRequests()
		_, _, err = ig.Instagram.PublishVideo(e.ctx, creatorID, meta.VideoUpload{File: file, Size: file.Size()})
		require.ErrorIs(t, err, meta.ErrFlavour)
		require.Zero(t, e.graphCalls())
		testkit.RequireNoSecret(t, e.logText(), appSecret)
	})
}

// TestPublishLostAnswer: publishing by URL sends media_publish once too; a
// lost answer is an OutcomeUnknownError and nothing is audited as
// published.
func TestPublishLostAnswer(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		e := newIGEnv(t, db)
		_, _, c := e.pageClient(allFeatures)
		require.NoError(t, e.srv.DropAnswer("POST", "/*/media_publish", 1))
		_, _, err := c.Instagram.Publish(e.ctx, igID, meta.MediaRequest{ImageURL: "https://cdn.example/a.jpg",
			PollInterval: time.Second, Timeout: time.Minute})
		var oe *meta.OutcomeUnknownError
		require.ErrorAs(t, err, &oe)
		require.NotEmpty(t, oe.ContainerID)
		require.Equal(t, 1, countPath(e.srv, "POST", "/"+igID+"/media_publish"))
		require.NotContains(t, e.auditActions(), "meta.instagram.publish")
		st, err := c.Instagram.Lookup(e.ctx, oe)
		require.NoError(t, err)
		require.Equal(t, meta.StatusPublished, st.Code, "Lookup tells it was published")
		require.Equal(t, 1, countPath(e.srv, "POST", "/"+igID+"/media_publish"), "Lookup publishes nothing")
	})
}
