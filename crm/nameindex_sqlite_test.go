package crm_test
