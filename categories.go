package socialcrm

import (
	"context"
	"fmt"

	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/crm"
	"github.com/socialcrm/socialcrm/meta"
	"github.com/socialcrm/socialcrm/retention"
	"github.com/socialcrm/socialcrm/social"
	"github.com/socialcrm/socialcrm/tenancy"
	"github.com/socialcrm/socialcrm/vault"
)

// Categories returns the retention categories of every tenant-owned table
// socialcrm creates, for retention.Engine.Register: what each holds, why,
// and how it is erased. Each package declares its own (tenancy's are
// declared by retention, which tenancy sits below); this only puts them
// together. audit is the log whose own retention truncates it. A host
// application registers its own tables' categories beside these;
// retention.Engine.Uncovered lists any tenant-owned table left without one.
func Categories(audit *tenancy.AuditLog) []retention.Category {
	cats := retention.TenancyCategories(audit)
	cats = append(cats, retention.OwnCategories()...)
	cats = append(cats, crm.Categories()...)
	cats = append(cats, meta.Categories()...)
	cats = append(cats, withThreads(social.Categories(), nil)...)
	return append(cats, vault.Categories()...)
}

// withThreads makes erasing a Meta connection also erase the Messenger and
// Instagram threads of its Pages and accounts with their messages, before
// what social erases with it: the inbox stores those threads as crm
// conversations, which neither social nor crm knows belong to a connection.
// The connections' account ids are sealed: st opens them; without a store
// (the package's Categories, for policies and the data map) erasing a Meta
// connection fails with social.ErrConfig rather than leave its threads.
func withThreads(cats []retention.Category, st *social.Store) []retention.Category {
	for i, c := range cats {
		if c.Name != social.CategoryConnection {
			continue
		}
		next := c.BeforeErase
		cats[i].BeforeErase = func(ctx context.Context, tx bun.Tx, ids []string) error {
			if err := eraseThreads(ctx, tx, st, ids); err != nil {
				return err
			}
			if next != nil {
				return next(ctx, tx, ids)
			}
			return nil
		}
	}
	return cats
}

// eraseThreads erases the Messenger and Instagram threads, with their
// messages, of the Meta connections ids.
func eraseThreads(ctx context.Context, tx bun.Tx, st *social.Store, ids []string) error {
	tid, err := tenancy.TenantID(ctx)
	if err != nil {
		return err
	}
	if st == nil {
		return fmt.Errorf("%w: socialcrm: erasing connections needs the SDK's categories (their account ids are sealed)", social.ErrConfig)
	}
	accounts, err := st.Accounts(ctx, tx, meta.Platform, ids)
	if err != nil {
		return fmt.Errorf("socialcrm: erase data of erased connections: %w", err)
	}
	if len(accounts) == 0 {
		return nil
	}
	channels := bun.In([]crm.Channel{crm.ChannelMessenger, crm.ChannelInstagram})
	threads := tx.NewSelect().TableExpr(crm.TableConversations).Column("id").
		Where("tenant_id = ?", tid).Where("account_id IN (?)", bun.In(accounts)).Where("channel IN (?)", channels)
	if _, err := tx.NewDelete().TableExpr(crm.TableMessages).
		Where("tenant_id = ?", tid).Where("conversation_id IN (?)", threads).Exec(ctx); err != nil {
		return fmt.Errorf("socialcrm: erase threads of erased connections: %w", err)
	}
	if _, err := tx.NewDelete().TableExpr(crm.TableConversations).
		Where("tenant_id = ?", tid).Where("account_id IN (?)", bun.In(accounts)).
		Where("channel IN (?)", channels).Exec(ctx); err != nil {
		return fmt.Errorf("socialcrm: erase threads of erased connections: %w", err)
	}
	return nil
}
